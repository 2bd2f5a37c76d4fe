from enum import StrEnum


class DefinedToolSource(StrEnum):
    WORKSPACE = "workspace"

    def __str__(self) -> str:
        return str(self.value)
