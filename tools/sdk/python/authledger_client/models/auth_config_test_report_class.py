from enum import StrEnum


class AuthConfigTestReportClass(StrEnum):
    FAILED = "failed"
    HOST_KEY_MISMATCH = "host_key_mismatch"
    INVALID_CREDENTIALS = "invalid_credentials"
    NOT_FOUND = "not_found"
    PERMISSION_DENIED = "permission_denied"
    TIMEOUT = "timeout"
    TLS_FAILURE = "tls_failure"
    UNREACHABLE = "unreachable"

    def __str__(self) -> str:
        return str(self.value)
