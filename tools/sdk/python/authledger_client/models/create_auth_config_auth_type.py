from enum import StrEnum


class CreateAuthConfigAuthType(StrEnum):
    API_KEY = "api_key"
    BASIC = "basic"
    BEARER_TOKEN = "bearer_token"
    CONNECTOR = "connector"
    NO_AUTH = "no_auth"
    OAUTH2 = "oauth2"
    POSTGRES = "postgres"

    def __str__(self) -> str:
        return str(self.value)
