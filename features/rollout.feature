Feature: Rolling out an agent version
  As a release manager I put a new agent version beside the serving one for a share of the
  traffic; when the new version fails its users, the platform sends everyone back to the serving
  version by itself and tells me why.

  Scenario: A bad rollout is rolled back automatically
    Given agent "grounded-qa" serves tenant "handbook" over HTTP with version "blue"
    And version "green" passed its evaluation, but its model fails one call in 5
    And the release manager "rita", the operations lead "omar" and the security team lead "sofia" approved version "green"
    And end users keep asking agent "grounded-qa" questions
    When the release manager deploys version "green"
    Then version "green" serves 10% of the traffic beside version "blue"
    When the rollout controller watches the rollout
    Then "agent-platform deploy status" says the rollout was rolled back because of its "error rate"
    And every end user is answered by version "blue" again
    And no request went unanswered, and only requests on version "green" failed
