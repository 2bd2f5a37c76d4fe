from enum import StrEnum


class ToolDefinitionRisk(StrEnum):
    DESTRUCTIVE = "destructive"
    READ = "read"
    WRITE = "write"

    def __str__(self) -> str:
        return str(self.value)
