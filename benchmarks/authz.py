"""Identity and access benchmark: policy decision latency, token verification, the whole hook.

    .venv/bin/python benchmarks/authz.py [--decisions 2000]

1. Policy decisions (the shipped policies/ bundle, rego-cpp in the evaluator process, over its
   pipe): p50/p99 uncached, over 40 distinct inputs (identities x actions x tenants), and with
   the 2 s decision cache the gateway uses (repeated inputs); and the rego-cpp bundle query
   alone, in this process (no pipe), to tell the evaluator's cost from the round trip's.
2. Token verification with joserfc (keys already cached, as in steady state): RS256, PS256,
   ES256, with claim checks and the Keycloak claim mapping.
3. The gateway hook's work per request: authenticate (verify + SQLite session check) and decide,
   serially, no HTTP. Writes benchmarks/results/authz.json (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from agent_platform.security import Identity
from agent_platform.security.authn import Authenticator
from agent_platform.security.authorize import policy_input
from agent_platform.security.policy import PolicyEngine
from agent_platform.settings import Settings

REPO = Path(__file__).resolve().parents[1]
ISSUER, AUDIENCE = "https://idp.example/realms/acme", "agent-platform"


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50_ms": round(pick(0.50) * 1000, 3), "p99_ms": round(pick(0.99) * 1000, 3)}


def timed(fn, count: int) -> list[float]:
    samples = []
    for i in range(count):
        started = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - started)
    return samples


def inputs(settings: Settings) -> list[dict]:
    roles = [{"viewer"}, {"user"}, {"operator"}, {"lead_architect"}, set()]
    actions = ["agents.read", "agents.run", "sessions.read", "models.promote"]
    body = []
    for n, role in enumerate(roles):
        identity = Identity(subject=f"u{n}", username=f"u{n}", roles=frozenset(role),
                            tenants=frozenset({"acme"}))  # fmt: skip
        for action in actions:
            for tenant in ("acme", "globex"):
                body.append(policy_input(identity, action, settings=settings, tenant=tenant,
                                         resource={"user": f"u{n}"}))  # fmt: skip
    return body


def tokens(count: int) -> tuple[dict, dict[str, list[str]]]:
    keys = {
        "RS256": RSAKey.generate_key(2048, parameters={"kid": "rs", "alg": "RS256"}),
        "PS256": RSAKey.generate_key(2048, parameters={"kid": "ps", "alg": "PS256"}),
        "ES256": ECKey.generate_key("P-256", parameters={"kid": "es", "alg": "ES256"}),
    }
    now = int(time.time())
    minted = {}
    for alg, key in keys.items():
        minted[alg] = [
            jwt.encode(
                {"alg": alg, "kid": key.kid},
                {
                    "iss": ISSUER,
                    "aud": AUDIENCE,
                    "sub": f"user-{i % 50}",
                    "iat": now,
                    "exp": now + 3600,
                    "preferred_username": f"user-{i % 50}",
                    "realm_access": {"roles": ["user"]},
                    "groups": ["/tenants/acme"],
                    "sid": f"sid-{i % 50}",
                },
                key,
                algorithms=[alg],
            )
            for i in range(count)
        ]
    jwks = {k.kid: {**k.as_dict(private=False), "alg": alg} for alg, k in keys.items()}
    return jwks, minted


def in_process(cases: list[dict], count: int) -> list[float]:
    """The worker's evaluation without the pipe (this process never loads PyTorch)."""
    sys.path.insert(0, str(REPO / "agent_platform" / "security"))
    import regopy
    from policy_worker import Compiled

    from agent_platform.security.policy import read_bundle

    compiled = Compiled(read_bundle(REPO / "policies")[1])

    def evaluate(i: int) -> None:
        compiled.runner.set_input(regopy.Input(cases[i % len(cases)]))
        compiled.runner.query_bundle(compiled.bundle)

    return timed(evaluate, count)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=2000)
    args = parser.parse_args()
    results: dict[str, object] = {"machine": platform.processor() or platform.machine()}
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(
            home=Path(home),
            auth={"required": True, "issuer": ISSUER, "audience": AUDIENCE, "max_sessions": 100},
        )
        uncached = PolicyEngine(REPO / "policies", cache_s=0)
        cases = inputs(settings)
        for case in cases:  # warm-up
            uncached.decide(case)
        samples = timed(lambda i: uncached.decide(cases[i % len(cases)]), args.decisions)
        results["decision_uncached"] = percentiles(samples)
        results["evaluation_in_process"] = percentiles(in_process(cases, args.decisions))
        cached = PolicyEngine(REPO / "policies", cache_s=2.0)
        samples = timed(lambda i: cached.decide(cases[i % len(cases)]), args.decisions)
        results["decision_cached_2s"] = percentiles(samples)

        jwks, minted = tokens(args.decisions)
        authenticator = Authenticator(settings)
        assert authenticator.keys is not None and authenticator.verifier is not None
        authenticator.keys._keys, authenticator.keys._fetched_at = jwks, time.monotonic()
        for alg, values in minted.items():
            samples = timed(lambda i, v=values: authenticator.verifier.verify(v[i]), len(values))
            results[f"verify_{alg}"] = percentiles(samples)
        tokens_rs = minted["RS256"]

        def hook(i: int) -> None:
            identity = authenticator.authenticate(f"Bearer {tokens_rs[i]}")
            body = {"user": identity.username}
            decision_input = policy_input(
                identity, "agents.run", settings=settings, tenant="acme", resource=body
            )
            cached.decide(decision_input)

        results["hook_authenticate_and_decide"] = percentiles(timed(hook, len(tokens_rs)))
        uncached.close()
        cached.close()
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "authz.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
