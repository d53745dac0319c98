"""kneelib.core.provenance: what a result records of the machine whose rounding made it."""

from __future__ import annotations

import torch

from kneelib.core import provenance

_ENTRY = "processor\t: {n}\nmodel name\t: AMD EPYC 9004\nflags\t\t: fpu sse2 {flags}\n"


def _cpuinfo(flags: str) -> str:
    return "\n".join(_ENTRY.format(n=n, flags=flags) for n in range(2))


def test_cpu_kind_names_the_most_capable_instruction_set() -> None:
    assert provenance.cpu_kind_of(_cpuinfo("avx avx2 fma"))["isa"] == "avx2"
    assert provenance.cpu_kind_of(_cpuinfo("avx2 avx512f avx512bw"))["isa"] == "avx512"
    kind = provenance.cpu_kind_of(_cpuinfo("avx2 avx512f avx512_bf16"))
    assert kind == {"model": "AMD EPYC 9004", "isa": "avx512_bf16", "flags": ["avx2", "avx512_bf16", "avx512f"]}
    assert provenance.cpu_kind_of(_cpuinfo("avx2 avx512f avx512_bf16 amx_tile amx_bf16"))["isa"] == "amx"
    assert provenance.cpu_kind_of(_cpuinfo("neon asimd"))["isa"] == "other"


def test_provenance_records_cpu_kind_and_threads() -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        record = provenance.provenance({"precision": "bf16"}, "sha", 0)
    finally:
        torch.set_num_threads(before)
    assert record["numerics"]["torch_threads"] == 1
    assert record["numerics"]["cpu"] == provenance.cpu_kind()
    assert record["numerics"]["cpu"]["isa"] in ("amx", "avx512_bf16", "avx512", "avx2", "other", "unknown")
    assert record["config"] == {"precision": "bf16"}
