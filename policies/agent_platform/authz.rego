# Authorization for the agent platform: RBAC over roles, ABAC over the tenant a request is for,
# the user it acts for and the resource's classification. The gateway and the operator commands
# ask `data.agent_platform.authz.decision` with input:
#   {"action": "agents.run", "tenant": "acme", "profile": "local", "auth_required": false,
#    "identity": {"subject", "username", "kind", "verified", "roles", "tenants"},
#    "resource": {"type", "name", "user", "classification"}}
# and get {"allow": bool, "missing": [codes of what the caller lacks], "roles": [roles that
# granted it], "grantors": [roles that would grant the action]}.
# rego-cpp (regopy) notes: query with `x := data...decision`, and in tests replace input fields
# one by one (`with input.identity as {...}`), not the whole input at once.
package agent_platform.authz

import rego.v1

approver_roles := {
	"lead_architect", "security_architect", "performance_engineer", "product_owner",
	"legal_compliance", "stakeholder_representative", "release_manager", "operations_lead",
	"security_team_lead",
}

approvals := {"agents.read", "prompts.approve", "models.approve", "readiness.signoff"}

viewer := {"agents.read", "sessions.read"}

user := viewer | {"agents.run", "sessions.rollback"}

# Operators act on other users' sessions and undo releases.
operator := user | {
	"sessions.read_any", "sessions.revoke", "prompts.rollback", "models.rollback",
	"index.restore", "audit.read",
}

admin := operator | {"prompts.promote", "models.promote", "deploy", "keys.create", "keys.revoke"}

releases := {"prompts.promote", "models.promote", "prompts.rollback", "models.rollback", "deploy"}

operations := {"index.restore", "deploy", "prompts.rollback", "models.rollback"}

role_permissions := {
	"viewer": viewer,
	"user": user,
	"operator": operator,
	"admin": admin,
	"lead_architect": approvals,
	"security_architect": approvals,
	"performance_engineer": approvals,
	"product_owner": approvals,
	"legal_compliance": approvals,
	"stakeholder_representative": approvals,
	"security_team_lead": approvals,
	"release_manager": approvals | releases,
	"operations_lead": approvals | operations,
}

# Actions on a tenant's data need membership of that tenant.
tenant_scoped := {"agents.run", "sessions.read", "sessions.rollback"}

# A prompt version's review roles (its header's `review.required_approvals`) and the identity
# roles that may fill each; a spec approver role also fills a review role of its own name. An
# approval asks `prompts.approve` with `resource.review_role`, and only these roles grant it.
review_role_holders := {
	"prompt-owner": {"lead_architect", "product_owner"},
	"safety": {"security_architect", "security_team_lead", "legal_compliance"},
}

fills_review_role(_) if not input.resource.review_role

fills_review_role(role) if role in review_role_holders[input.resource.review_role]

fills_review_role(role) if {
	role == input.resource.review_role
	role in approver_roles
}

# Roles of the caller that grant the action.
granted contains role if {
	some role in input.identity.roles
	input.action in role_permissions[role]
	fills_review_role(role)
}

# The roles that would grant the action (named in a denial).
roles_for_action contains role if {
	some role, permissions in role_permissions
	input.action in permissions
	fills_review_role(role)
}

# The local profile without authentication: the anonymous caller and `--as NAME` development
# identities may do everything (the gateway warns about it at start and in /readyz).
local_open if {
	input.profile == "local"
	input.auth_required == false
	input.identity.verified == false
}

tenant_ok if not input.action in tenant_scoped

tenant_ok if input.tenant in input.identity.tenants

# A request may act for its own user only, unless the caller is a service (a backend that
# passes its end users' names) or may read any user's sessions.
user_ok if not input.resource.user

user_ok if input.resource.user == input.identity.username

user_ok if input.identity.kind == "service"

user_ok if {
	some role in input.identity.roles
	"sessions.read_any" in role_permissions[role]
}

restricted_clearance := {"operator", "admin", "security_team_lead"}

classification_ok if not input.resource.classification == "restricted"

classification_ok if {
	some role in input.identity.roles
	role in restricted_clearance
}

default allow := false

allow if local_open

allow if {
	count(granted) > 0
	tenant_ok
	user_ok
	classification_ok
}

# What the caller lacks, as fixed codes (the caller names the action and tenant in its message;
# nothing from the input is echoed, so a decision's output is always well-formed).
missing contains "permission" if {
	not local_open
	count(granted) == 0
}

missing contains "tenant_membership" if {
	not local_open
	not tenant_ok
}

missing contains "act_for_user" if {
	not local_open
	not user_ok
}

missing contains "clearance" if {
	not local_open
	not classification_ok
}

decision := {"allow": allow, "missing": missing, "roles": granted, "grantors": roles_for_action}
