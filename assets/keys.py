"""The encryption key ring: each materialization rotates the keys when they are due (30 days)."""

import dagster as dg

from resources.keys import KeyRingResource

GROUP = "security"


class KeyRotationConfig(dg.Config):
    """`force=True` rotates now, whatever the keys' age."""

    force: bool = False


@dg.asset(group_name=GROUP, kinds={"aes"})
def encryption_keys(
    context: dg.AssetExecutionContext, config: KeyRotationConfig, key_ring: KeyRingResource
) -> dg.MaterializeResult:
    """A new key version and re-wrapped data keys once the current ones are due; audited."""
    actor = {"username": "dagster", "via": f"run {context.run_id}"}
    report = key_ring.rotate(force=config.force, actor=actor)
    context.log.info(f"key rotation: {report.reason}")
    return dg.MaterializeResult(
        metadata={
            "rotated": report.rotated,
            "kek_version": report.kek_version,
            "previous_kek_version": report.previous_kek_version,
            "new_data_keys": report.new_data_keys,
            "rewrapped_data_keys": report.rewrapped,
            "batches": report.batches,
            "retired_kek_versions": dg.MetadataValue.json(report.retired_kek_versions),
        }
    )


key_rotation_job = dg.define_asset_job(
    "key_rotation_job",
    selection=dg.AssetSelection.assets(encryption_keys),
    description="Rotate the encryption keys when due and re-wrap every data key in batches.",
)
