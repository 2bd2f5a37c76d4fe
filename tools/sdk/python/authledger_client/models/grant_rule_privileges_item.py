from enum import StrEnum


class GrantRulePrivilegesItem(StrEnum):
    DELETE = "DELETE"
    INSERT = "INSERT"
    SELECT = "SELECT"
    UPDATE = "UPDATE"

    def __str__(self) -> str:
        return str(self.value)
