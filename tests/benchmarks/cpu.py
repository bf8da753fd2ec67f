"""The line every benchmark prints first: a speed holds only for the CPU it was measured on."""

from __future__ import annotations

import os


def cpu_line() -> str:
    from assistant.hardware.machine import cpu_flags, cpu_name, math_cores

    flags = cpu_flags()
    avx512 = sorted(f for f in flags if f.startswith("avx512"))
    amx = sorted(f for f in flags if f.startswith("amx"))
    return (
        f"CPU: {cpu_name()}, {os.cpu_count()} threads, {math_cores()} cores; "
        f"AVX2 {'yes' if 'avx2' in flags else 'no'}; "
        f"AVX-512 {' '.join(avx512) if avx512 else 'no'}; AMX {' '.join(amx) if amx else 'no'}"
    )


if __name__ == "__main__":
    print(cpu_line())
