"""The Linux PodRuntime (namespaces, cgroups, veth, nftables) and its clean-up."""

from falcoir.lab.linux.runtime import NOT_ISOLATED_WARNING, Exec, LinuxRuntime, can_isolate, cleanup

__all__ = ["NOT_ISOLATED_WARNING", "Exec", "LinuxRuntime", "can_isolate", "cleanup"]
