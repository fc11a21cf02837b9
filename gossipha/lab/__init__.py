"""A network-namespace lab of the tutorial's two-node cluster, for tests and `gossipha demo`.

Everything built here lives in namespaces named with a per-lab prefix (``gha-<random>-``);
nothing is added to the root namespace, and teardown removes what the lab built.
"""

from gossipha.lab.topology import TUTORIAL_HOSTS, HostSpec, IfaceSpec, Lab, LabError, sweep_stale

__all__ = ["TUTORIAL_HOSTS", "HostSpec", "IfaceSpec", "Lab", "LabError", "sweep_stale"]
