Feature: Serving agents over HTTP
  As an end user I call an agent of my organisation over HTTP and get a cited answer;
  a request for an agent that does not exist gets a clear problem, not a crash.

  Scenario: A request is served over HTTP and an unknown agent is a 404 problem
    Given the tenant "handbook" has these documents
      | file        | text                                                                                                                        |
      | refunds.md  | # Refunds\n\nCustomers can request a refund within 30 days of delivery. Refunds are paid back within 5 business days.      |
      | shipping.md | # Shipping\n\nStandard shipping takes 3 to 5 business days. Express shipping delivers the next business day.              |
    And the operator has ingested the documents of tenant "handbook"
    And the platform is serving on a loopback port
    When end user "erin" asks agent "grounded-qa" of tenant "handbook" over HTTP "How fast is express shipping?"
    Then the reply is 200 with an answer saying "next business day" that cites "shipping.md"
    When end user "erin" asks agent "no-such-agent" of tenant "handbook" over HTTP "How fast is express shipping?"
    Then the reply is a 404 problem whose detail names "no-such-agent"
