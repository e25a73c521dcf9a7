Feature: A tenant's knowledge base
  As an operator I load a tenant's documents into its own index,
  so that its end users get answers grounded in those documents, with the sources cited.

  Background:
    Given the tenant "acme" has these documents
      | file        | text                                                                              |
      | restore.md  | # Restoring\n\nUse the index restore command with a snapshot id to bring an index back. |
      | pricing.txt | The extractive model costs nothing per token.                                     |

  Scenario: Documents are ingested, searched and answered with citations
    When the operator ingests the documents of tenant "acme"
    Then 2 documents were seen and 2 chunks are indexed
    And no document was skipped
    When an end user searches tenant "acme" for "bring an index back from a snapshot"
    Then the best hit comes from "restore.md"
    When an end user searches tenant "acme" for "price per token"
    Then the best hit comes from "pricing.txt"
    When end user "alice" asks tenant "acme" "How do I restore?"
    Then the answer says "snapshot id"
    And the answer cites "restore.md" as [1]

  Scenario: A bad document is skipped and nothing indexed is lost
    Given the operator has ingested the documents of tenant "acme"
    And a binary file "scan.txt" lands in the folder of tenant "acme"
    When the operator ingests the documents of tenant "acme"
    Then 3 documents were seen and 2 chunks are indexed
    And "scan.txt" was skipped because it is "binary content (NUL bytes) in a text file"
    And no indexed chunk was deleted or embedded again
    When an end user searches tenant "acme" for "price per token"
    Then the best hit comes from "pricing.txt"
