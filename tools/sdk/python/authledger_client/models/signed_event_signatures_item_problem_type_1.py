from enum import StrEnum


class SignedEventSignaturesItemProblemType1(StrEnum):
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_KEY = "unknown_key"

    def __str__(self) -> str:
        return str(self.value)
