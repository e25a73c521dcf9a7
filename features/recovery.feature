Feature: Recovering a damaged index
  As an operator I keep snapshots of each tenant's index, so that when its files are damaged
  the error tells me how to bring it back, and one command does.

  Scenario: A snapshot is restored after corruption
    Given the tenant "acme" has these documents
      | file        | text                                                                                    |
      | restore.md  | # Restoring\n\nUse the index restore command with a snapshot id to bring an index back. |
      | pricing.txt | The extractive model costs nothing per token.                                           |
    And the operator has ingested the documents of tenant "acme"
    And the operator has taken a snapshot of tenant "acme"
    When the records database of tenant "acme" is overwritten with garbage
    Then searching tenant "acme" fails with one line naming the restore of that snapshot
    When the operator runs the restore command the error names
    Then the index of tenant "acme" verifies as healthy with 2 chunks
    When an end user searches tenant "acme" for "price per token"
    Then the best hit comes from "pricing.txt"
