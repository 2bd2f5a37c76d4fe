from enum import StrEnum


class MemberRole(StrEnum):
    ADMIN = "admin"
    AUDITOR = "auditor"
    DEVELOPER = "developer"
    VIEWER = "viewer"

    def __str__(self) -> str:
        return str(self.value)
