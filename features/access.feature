Feature: Only callers who sign in are served
  As a security officer I require every HTTP caller to present a credential: a token from the
  organisation's identity provider or a service account's API key. A request without one is
  refused with a problem that says what is missing, and nothing of the tenant's documents.

  Scenario: A request is refused without a token
    Given the tenant "handbook" has these documents
      | file        | text                                                                                                          |
      | shipping.md | # Shipping\n\nStandard shipping takes 3 to 5 business days. Express shipping delivers the next business day. |
    And the operator has ingested the documents of tenant "handbook"
    And the organisation's identity provider signs in user "erin" of tenant "handbook"
    And the platform requires sign-in and is serving on a loopback port
    When end user "erin" asks agent "grounded-qa" of tenant "handbook" over HTTP "How fast is express shipping?"
    Then the reply is a 401 problem whose detail names "send a valid bearer token or API key"
    And the reply asks for a bearer credential and reveals nothing else
    When end user "erin" signs in and asks agent "grounded-qa" of tenant "handbook" over HTTP "How fast is express shipping?"
    Then the reply is 200 with an answer saying "next business day" that cites "shipping.md"
    When the operator creates an API key for service account "helpdesk" with role "user" on tenant "handbook"
    And service account "helpdesk" asks agent "grounded-qa" of tenant "handbook" over HTTP "How fast is express shipping?" for end user "erin"
    Then the reply is 200 with an answer saying "next business day" that cites "shipping.md"
