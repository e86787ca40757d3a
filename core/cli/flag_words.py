"""A refusal of the config `mrun run` made from its flags, said with the flag that set the field.

The runtime names the OCI field it refuses (runc's words: a bundle's author wrote that field).
A `run` caller wrote flags, and the config.json naming the field is one mrun generated in the
image root: so the path goes and the flag is named beside the field. Only fields that flags
alone set are named so; the user, working directory, environment and mounts may come from the
image, where naming a flag would mislead."""

from __future__ import annotations

import os

from mrun.errors import MrunError

# longest first where one field's name begins another's
FLAGS_OF_FIELDS = (
    ("linux.resources.cpu.realtimeRuntime", "--cpu-rt-runtime"),
    ("linux.resources.cpu.realtimePeriod", "--cpu-rt-period"),
    ("linux.resources.cpu", "--cpus, --cpu-shares, --cpu-period, --cpu-quota, --cpuset-*"),
    ("linux.resources.memory", "--memory, --memory-swap, --memory-reservation, --memory-swappiness"),
    ("linux.resources.pids", "--pids-limit"),
    ("linux.resources.blockIO", "--blkio-weight, --device-read-*, --device-write-*"),
    ("linux.resources.devices", "--device, --device-cgroup-rule"),
    ("linux.resources.hugepageLimits", "--memory"),
    ("linux.devices", "--device"),
    ("linux.sysctl", "--sysctl"),
    ("linux.seccomp", "--security-opt seccomp"),
    ("process.rlimits", "--ulimit"),
    ("process.oomScoreAdj", "--oom-score-adj"),
    ("process.capabilities", "--cap-add, --cap-drop"),
    ("process.apparmorProfile", "--security-opt apparmor"),
    ("hostname", "--hostname"),
    ("domainname", "--domainname"),
)


def in_flag_words(e: MrunError, bundle: str) -> MrunError:
    """``e`` as a `run` caller reads it: without the generated config.json's path, and with the
    flag (or flags) that set the field it names, where only flags set it. (The same kind of
    error, so its exit code is kept.)"""
    said = str(e).removeprefix(os.path.join(bundle, "config.json") + ": ")
    field, colon, why = said.partition(": ")
    for prefix, flags in FLAGS_OF_FIELDS:
        if colon and (field == prefix or field.startswith((prefix + ".", prefix + "["))):
            said = f"{field} ({flags}): {why}"
            break
    if said == str(e):
        return e
    told = type(e)(said)
    told.__dict__.update(e.__dict__)
    return told
