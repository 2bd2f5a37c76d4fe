from enum import StrEnum


class ConnectionStatus(StrEnum):
    ACTIVE = "active"
    DELETED = "deleted"
    ERROR = "error"
    EXPIRED = "expired"
    INITIATED = "initiated"
    NEEDS_RECONSENT = "needs_reconsent"
    REVOKED = "revoked"

    def __str__(self) -> str:
        return str(self.value)
