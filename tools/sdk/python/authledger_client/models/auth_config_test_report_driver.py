from enum import StrEnum


class AuthConfigTestReportDriver(StrEnum):
    AMQP = "amqp"
    MYSQL = "mysql"
    POSTGRES = "postgres"
    REDIS = "redis"
    S3 = "s3"
    SFTP = "sftp"

    def __str__(self) -> str:
        return str(self.value)
