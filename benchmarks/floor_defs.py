"""The framework floor: a trivial one-asset Dagster job (no CryptoRun code at all).

    dagster job execute -m benchmarks.floor_defs -j floor_job

Everything a cycle costs above this is CryptoRun's own (definitions loading, resources, I/O
managers, the engine); everything below it is Dagster's fixed cost per run on this machine.
"""

import dagster as dg


@dg.asset
def floor_value() -> int:
    """A constant: the cheapest materialisation Dagster can do."""
    return 1


floor_job = dg.define_asset_job("floor_job", selection=[floor_value])

defs = dg.Definitions(assets=[floor_value], jobs=[floor_job])
