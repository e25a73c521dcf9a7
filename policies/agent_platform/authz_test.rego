# Unit tests of the authorization policy (run by tests/security/test_policy.py, and by
# `opa test policies/` where OPA is installed). Inputs are replaced field by field, as rego-cpp
# needs (see authz.rego), and identities are literals in each test: rego-cpp does not resolve a
# rule reference in `with ... as`.
package agent_platform.authz_test

import data.agent_platform.authz
import rego.v1

test_user_runs_agent_of_own_tenant if {
	authz.allow with input.identity as {"subject": "a1", "username": "alice", "kind": "user", "verified": true, "roles": ["user"], "tenants": ["acme"]}
		with input.action as "agents.run"
		with input.tenant as "acme" with input.resource as {"user": "alice"}
		with input.profile as "production" with input.auth_required as true
}

test_user_refused_other_tenant if {
	d := authz.decision with input.identity as {"subject": "a1", "username": "alice", "kind": "user", "verified": true, "roles": ["user"], "tenants": ["acme"]}
		with input.action as "agents.run"
		with input.tenant as "globex" with input.resource as {"user": "alice"}
		with input.profile as "production" with input.auth_required as true
	d.allow == false
	"tenant_membership" in d.missing
}

test_viewer_may_read_not_run if {
	authz.allow with input.identity as {"subject": "v1", "username": "vera", "kind": "user", "verified": true, "roles": ["viewer"], "tenants": ["acme"]}
		with input.action as "agents.read"
		with input.resource as {} with input.profile as "production"
		with input.auth_required as true
	d := authz.decision with input.identity as {"subject": "v1", "username": "vera", "kind": "user", "verified": true, "roles": ["viewer"], "tenants": ["acme"]}
		with input.action as "agents.run"
		with input.tenant as "acme" with input.resource as {}
		with input.profile as "production" with input.auth_required as true
	d.allow == false
	"permission" in d.missing
}

test_user_cannot_act_for_another_user if {
	d := authz.decision with input.identity as {"subject": "a1", "username": "alice", "kind": "user", "verified": true, "roles": ["user"], "tenants": ["acme"]}
		with input.action as "sessions.read"
		with input.tenant as "acme" with input.resource as {"user": "bob"}
		with input.profile as "production" with input.auth_required as true
	d.allow == false
	d.missing == {"act_for_user"}
}

test_service_acts_for_its_users if {
	service := {"subject": "service:bot", "username": "bot", "kind": "service", "verified": true, "roles": ["user"], "tenants": ["acme"]}
	authz.allow with input.identity as service with input.action as "agents.run"
		with input.tenant as "acme" with input.resource as {"user": "bob"}
		with input.profile as "production" with input.auth_required as true
}

test_restricted_resource_needs_clearance if {
	not authz.allow with input.identity as {"subject": "a1", "username": "alice", "kind": "user", "verified": true, "roles": ["user"], "tenants": ["acme"]}
		with input.action as "agents.read"
		with input.resource as {"classification": "restricted"}
		with input.profile as "production" with input.auth_required as true
	operator := {"subject": "o1", "username": "olga", "kind": "user", "verified": true, "roles": ["operator"], "tenants": []}
	authz.allow with input.identity as operator with input.action as "agents.read"
		with input.resource as {"classification": "restricted"}
		with input.profile as "production" with input.auth_required as true
}

test_approver_roles_approve_but_do_not_promote if {
	architect := {"subject": "l1", "username": "lea", "kind": "user", "verified": true, "roles": ["lead_architect"], "tenants": []}
	authz.allow with input.identity as architect with input.action as "prompts.approve"
		with input.resource as {} with input.profile as "production"
		with input.auth_required as true
	not authz.allow with input.identity as architect with input.action as "prompts.promote"
		with input.resource as {} with input.profile as "production"
		with input.auth_required as true
}

test_release_manager_promotes if {
	release := {"subject": "r1", "username": "rob", "kind": "user", "verified": true, "roles": ["release_manager"], "tenants": []}
	authz.allow with input.identity as release with input.action as "models.promote"
		with input.resource as {} with input.profile as "production"
		with input.auth_required as true
}

test_anonymous_allowed_only_in_local_without_auth if {
	authz.allow with input.identity as {"subject": "anonymous", "kind": "anonymous", "verified": false, "roles": [], "tenants": []}
		with input.action as "agents.run"
		with input.tenant as "acme" with input.resource as {}
		with input.profile as "local" with input.auth_required as false
	not authz.allow with input.identity as {"subject": "anonymous", "kind": "anonymous", "verified": false, "roles": [], "tenants": []}
		with input.action as "agents.run"
		with input.tenant as "acme" with input.resource as {}
		with input.profile as "local" with input.auth_required as true
	not authz.allow with input.identity as {"subject": "anonymous", "kind": "anonymous", "verified": false, "roles": [], "tenants": []}
		with input.action as "agents.read"
		with input.resource as {} with input.profile as "production"
		with input.auth_required as true
}

test_unknown_action_denied_even_for_admin if {
	admin := {"subject": "ad", "username": "ada", "kind": "user", "verified": true, "roles": ["admin"], "tenants": ["acme"]}
	not authz.allow with input.identity as admin with input.action as "everything"
		with input.resource as {} with input.profile as "production"
		with input.auth_required as true
}

test_review_role_filled_only_by_its_holders if {
	architect := {"subject": "s1", "username": "sam", "kind": "user", "verified": true, "roles": ["security_architect", "lead_architect"], "tenants": []}
	d := authz.decision with input.identity as architect with input.action as "prompts.approve"
		with input.resource as {"review_role": "safety"} with input.profile as "production"
		with input.auth_required as true
	d.allow == true
	d.roles == {"security_architect"}
	owner := {"subject": "p1", "username": "pat", "kind": "user", "verified": true, "roles": ["product_owner"], "tenants": []}
	refused := authz.decision with input.identity as owner with input.action as "prompts.approve"
		with input.resource as {"review_role": "safety"} with input.profile as "production"
		with input.auth_required as true
	refused.allow == false
	"security_architect" in refused.grantors
	not "product_owner" in refused.grantors
}
