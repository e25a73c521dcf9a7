Feature: Choosing which agent version serves
  As a release manager I evaluate candidate agent versions against questions with known answers;
  a version that fails a quality gate cannot become the champion, and I am told which gate.

  Scenario: An agent version is evaluated, blocked by a gate with the reason shown, and another promoted
    Given the tenant "handbook" has these documents
      | file        | text                                                                                                                   |
      | refunds.md  | # Refunds\n\nCustomers can request a refund within 30 days of delivery.                                              |
      | shipping.md | # Shipping\n\nStandard shipping takes 3 to 5 business days. Express shipping delivers the next business day.         |
    And the operator has ingested the documents of tenant "handbook"
    And the evaluation questions about tenant "handbook" are
      | question                        | reference                                            | key fact          | source      |
      | How fast is express shipping?   | Express shipping delivers the next business day.     | next business day | shipping.md |
      | Within how many days of delivery can a customer request a refund? | Customers can request a refund within 30 days of delivery. | 30 days | refunds.md |
    And the candidate agents are
      | candidate | search | passages | minimum relevance |
      | cautious  | vector | 5        | 0.99              |
      | grounded  | hybrid | 5        | 0.7               |
    When the release manager evaluates the candidates with an accuracy gate of 0.8
    Then candidate "cautious" is version 1 and fails its accuracy gate
    And candidate "grounded" is version 2 and passes every gate
    When the release manager promotes agent version 1
    Then the promotion is refused with the reason "accuracy 0 < 0.8"
    When the release manager promotes agent version 2
    Then agent version 2 is the champion and the audit log says who promoted it
