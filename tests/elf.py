"""Shared objects built with gcc whose dependencies are then taken away: what a machine that
lacks a library looks like to the dynamic loader, for tests of what the app says about it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def shared_object(folder: Path, name: str, needs: list[str]) -> Path:
    """``folder/name``, a shared object that needs the libraries ``needs`` (by soname), which are
    then deleted: the loader finds them nowhere."""
    build = folder / "build"
    build.mkdir(exist_ok=True)
    links = []
    for soname in needs:
        stub = build / soname
        command = ["gcc", "-shared", "-fPIC", "-o", str(stub), f"-Wl,-soname,{soname}"]
        subprocess.run([*command, "-x", "c", "-"], input=b"int stub(void){return 0;}", check=True)
        links.append(str(stub))
    target = folder / name
    command = ["gcc", "-shared", "-fPIC", "-o", str(target), "-Wl,--no-as-needed", *links]
    subprocess.run([*command, "-x", "c", "-"], input=b"int f(void){return 1;}", check=True)
    shutil.rmtree(build)
    return target
