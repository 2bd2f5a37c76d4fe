from enum import StrEnum


class AuthConfigAsOfStatus(StrEnum):
    DELETED = "deleted"
    DISABLED = "disabled"
    ENABLED = "enabled"

    def __str__(self) -> str:
        return str(self.value)
