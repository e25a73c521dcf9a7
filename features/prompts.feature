Feature: Changing a prompt safely
  As a prompt author I change the wording of a prompt, and the platform checks the change
  before anything reaches production. A broken change never replaces the version that serves.

  Scenario: A prompt change is validated, tested, approved and promoted
    Given the shipped prompts are published
    And "alice" approves "grounded_qa_system" version 1 as "prompt-owner"
    And "bob" approves "grounded_qa_system" version 1 as "safety"
    And the release manager promotes "grounded_qa_system" version 1
    When the prompt author rewords "short, direct answer" as "short answer" in "grounded_qa_system"
    And the prompt author validates and tests the prompts
    Then validation passes and every prompt test case passes
    When the prompt author publishes the change
    Then the change is published as "grounded_qa_system" version 2, a candidate
    And "grounded_qa_system" version 1 is still production
    When "alice" approves "grounded_qa_system" version 2 as "prompt-owner"
    And "bob" approves "grounded_qa_system" version 2 as "safety"
    And the release manager promotes "grounded_qa_system" version 2
    Then "grounded_qa_system" version 2 is production

  Scenario Outline: A broken prompt is refused while the promoted version keeps serving
    Given the tenant "acme" has these documents
      | file       | text                                                                                    |
      | restore.md | # Restoring\n\nUse the index restore command with a snapshot id to bring an index back. |
    And the operator has ingested the documents of tenant "acme"
    And the shipped prompts are published
    And "alice" approves "grounded_qa_system" version 1 as "prompt-owner"
    And "bob" approves "grounded_qa_system" version 1 as "safety"
    And the release manager promotes "grounded_qa_system" version 1
    When the prompt author adds the line "<line>" to "grounded_qa_system"
    And the prompt author validates and tests the prompts
    Then validation fails, naming the changed file, its line and "<problem>"
    When the prompt author publishes the change
    Then publication is refused and "grounded_qa_system" keeps only version 1
    And "grounded_qa_system" version 1 is still production
    When end user "alice" asks tenant "acme" "How do I restore?"
    Then the answer cites "restore.md" as [1]
    And the answer says "prompt: grounded_qa_system v1 (1.0.0, production)"

    Examples:
      | mistake            | line                                                                               | problem                                       |
      | undefined variable | Greet {{ customer_name }} by name.                                                 | variable 'customer_name' is used but not declared |
      | template bomb      | {% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}   | refused, render limit: over the               |
