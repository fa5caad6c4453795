"""Where the JVM side lives: jars resolved from Maven Central by ``make jars``.

Each folder under ``.jars/`` is filled from the pom of the same name under
``jvm/`` (``mvn dependency:copy-dependencies``); nothing here downloads.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from fraud.config import PROJECT_ROOT

JARS_DIR = PROJECT_ROOT / ".jars"


class MissingJarsError(RuntimeError):
    pass


def jars(group: str) -> list[Path]:
    """The jars of ``group`` (spark, kafka, elasticsearch), sorted. Raises MissingJarsError (run `make jars`) when
    there are none."""
    found = sorted((JARS_DIR / group).glob("*.jar"))
    if not found:
        raise MissingJarsError(f"no jars in {JARS_DIR / group}: run `make jars` (resolves jvm/{group}/pom.xml "
                               f"from Maven Central)")
    return found


def classpath(group: str) -> str:
    return os.pathsep.join(str(jar) for jar in jars(group))


def java_executable() -> str:
    """``$JAVA_HOME/bin/java`` when set, else ``java`` from PATH. Raises MissingJarsError when there is none."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise MissingJarsError("no Java found: install a JDK 17 (apt-get install openjdk-17-jdk-headless)")
    return java
