"""IO managers: the SPEC §9 artifact writer/reader."""

from cryptorun_pipelines.io_managers.artifacts import ArtifactIOManager, MissingUpstreamPartitionError, PartitionedValues

__all__ = ["ArtifactIOManager", "MissingUpstreamPartitionError", "PartitionedValues"]
