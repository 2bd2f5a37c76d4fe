"""Contains all the data models used in inputs/outputs"""

from .agent_connect_flows import AgentConnectFlows
from .api_key import ApiKey
from .api_key_credentials import ApiKeyCredentials
from .approval import Approval
from .approval_status import ApprovalStatus
from .audit_access_response_200 import AuditAccessResponse200
from .audit_access_response_200_connections_item import AuditAccessResponse200ConnectionsItem
from .audit_checkpoints_response_200 import AuditCheckpointsResponse200
from .audit_consistency_response_200 import AuditConsistencyResponse200
from .audit_cosign_body import AuditCosignBody
from .audit_cosign_response_201 import AuditCosignResponse201
from .audit_event import AuditEvent
from .audit_event_actor import AuditEventActor
from .audit_event_aggregate import AuditEventAggregate
from .audit_events_order import AuditEventsOrder
from .audit_events_response_200 import AuditEventsResponse200
from .audit_export_format import AuditExportFormat
from .auth_config import AuthConfig
from .auth_config_as_of import AuthConfigAsOf
from .auth_config_as_of_auth_type_type_1 import AuthConfigAsOfAuthTypeType1
from .auth_config_as_of_settings_type_0 import AuthConfigAsOfSettingsType0
from .auth_config_as_of_status import AuthConfigAsOfStatus
from .auth_config_auth_type import AuthConfigAuthType
from .auth_config_settings import AuthConfigSettings
from .auth_config_status import AuthConfigStatus
from .auth_config_test_report import AuthConfigTestReport
from .auth_config_test_report_class import AuthConfigTestReportClass
from .auth_config_test_report_driver import AuthConfigTestReportDriver
from .auth_config_versions_response_200 import AuthConfigVersionsResponse200
from .auth_config_versions_response_200_items_item import AuthConfigVersionsResponse200ItemsItem
from .basic_credentials import BasicCredentials
from .bearer_token_credentials import BearerTokenCredentials
from .checkpoint import Checkpoint
from .connection import Connection
from .connection_as_of import ConnectionAsOf
from .connection_list import ConnectionList
from .connection_status import ConnectionStatus
from .connector import Connector
from .create_api_key import CreateApiKey
from .create_api_key_response_201 import CreateApiKeyResponse201
from .create_auth_config import CreateAuthConfig
from .create_auth_config_api_key import CreateAuthConfigApiKey
from .create_auth_config_api_key_location import CreateAuthConfigApiKeyLocation
from .create_auth_config_auth_type import CreateAuthConfigAuthType
from .create_auth_config_basic import CreateAuthConfigBasic
from .create_auth_config_bearer_token import CreateAuthConfigBearerToken
from .create_auth_config_connector import CreateAuthConfigConnector
from .create_auth_config_connector_settings import CreateAuthConfigConnectorSettings
from .create_auth_config_no_auth import CreateAuthConfigNoAuth
from .create_auth_config_oauth_2 import CreateAuthConfigOauth2
from .create_auth_config_oauth_2_client_auth_method import CreateAuthConfigOauth2ClientAuthMethod
from .create_auth_config_oauth_2_extra_authorize_params import CreateAuthConfigOauth2ExtraAuthorizeParams
from .create_auth_config_postgres import CreateAuthConfigPostgres
from .create_auth_config_postgres_ssl_mode import CreateAuthConfigPostgresSslMode
from .create_connection import CreateConnection
from .create_connection_no_auth import CreateConnectionNoAuth
from .create_webhook import CreateWebhook
from .create_webhook_response_201 import CreateWebhookResponse201
from .created_connection import CreatedConnection
from .defined_tool import DefinedTool
from .defined_tool_source import DefinedToolSource
from .delete_auth_config_response_409 import DeleteAuthConfigResponse409
from .dynamic_credential import DynamicCredential
from .dynamic_credentials_policy import DynamicCredentialsPolicy
from .dynamic_credentials_policy_grants import DynamicCredentialsPolicyGrants
from .execute_tool import ExecuteTool
from .execute_tool_arguments import ExecuteToolArguments
from .gateway import Gateway
from .gateway_input import GatewayInput
from .gateway_input_servers_item import GatewayInputServersItem
from .gateway_list import GatewayList
from .gateway_servers_item import GatewayServersItem
from .gateway_status import GatewayStatus
from .grant_rule import GrantRule
from .grant_rule_privileges_item import GrantRulePrivilegesItem
from .identity_provider import IdentityProvider
from .invite_member import InviteMember
from .invite_member_response_201 import InviteMemberResponse201
from .issue_dynamic_credentials import IssueDynamicCredentials
from .jwks import Jwks
from .jwks_keys_item import JwksKeysItem
from .list_api_keys_response_200 import ListApiKeysResponse200
from .list_auth_configs_response_200 import ListAuthConfigsResponse200
from .list_connections_status import ListConnectionsStatus
from .list_members_response_200 import ListMembersResponse200
from .list_webhooks_response_200 import ListWebhooksResponse200
from .mcp_body import McpBody
from .mcp_body_params import McpBodyParams
from .mcp_gateway_body import McpGatewayBody
from .mcp_gateway_body_params import McpGatewayBodyParams
from .mcp_gateway_response_200 import McpGatewayResponse200
from .mcp_person_body import McpPersonBody
from .mcp_person_body_params import McpPersonBodyParams
from .mcp_person_gateway_body import McpPersonGatewayBody
from .mcp_person_gateway_body_params import McpPersonGatewayBodyParams
from .mcp_person_gateway_metadata_response_200 import McpPersonGatewayMetadataResponse200
from .mcp_person_gateway_response_200 import McpPersonGatewayResponse200
from .mcp_person_metadata_response_200 import McpPersonMetadataResponse200
from .mcp_person_response_200 import McpPersonResponse200
from .mcp_response_200 import McpResponse200
from .me_response_200 import MeResponse200
from .member import Member
from .member_role import MemberRole
from .member_role_change import MemberRoleChange
from .member_status import MemberStatus
from .my_approvals_response_200 import MyApprovalsResponse200
from .my_connections_status import MyConnectionsStatus
from .note import Note
from .postgres_credentials import PostgresCredentials
from .problem import Problem
from .problem_errors_item import ProblemErrorsItem
from .protected_resource_response_200 import ProtectedResourceResponse200
from .readyz_response_200 import ReadyzResponse200
from .reason import Reason
from .released_token import ReleasedToken
from .replay_webhook_response_202 import ReplayWebhookResponse202
from .revoke_connection import RevokeConnection
from .role import Role
from .rotate_webhook_secret_response_200 import RotateWebhookSecretResponse200
from .scoped_token import ScopedToken
from .scoped_token_request import ScopedTokenRequest
from .scoped_token_status import ScopedTokenStatus
from .second_factor_requirement import SecondFactorRequirement
from .signed_event import SignedEvent
from .signed_event_body import SignedEventBody
from .signed_event_envelope import SignedEventEnvelope
from .signed_event_inclusion_type_1 import SignedEventInclusionType1
from .signed_event_signatures_item import SignedEventSignaturesItem
from .signed_event_signatures_item_problem_type_1 import SignedEventSignaturesItemProblemType1
from .test_auth_config import TestAuthConfig
from .tool_definition import ToolDefinition
from .tool_definition_headers import ToolDefinitionHeaders
from .tool_definition_method import ToolDefinitionMethod
from .tool_definition_parameters import ToolDefinitionParameters
from .tool_definition_parameters_properties import ToolDefinitionParametersProperties
from .tool_definition_risk import ToolDefinitionRisk
from .tool_definition_undo import ToolDefinitionUndo
from .tool_definition_undo_body import ToolDefinitionUndoBody
from .tool_definition_undo_method import ToolDefinitionUndoMethod
from .tool_list import ToolList
from .tool_list_items_item import ToolListItemsItem
from .tool_response_storage import ToolResponseStorage
from .tool_result import ToolResult
from .undone_tool_call import UndoneToolCall
from .update_auth_config import UpdateAuthConfig
from .update_auth_config_api_key import UpdateAuthConfigApiKey
from .update_auth_config_api_key_location import UpdateAuthConfigApiKeyLocation
from .update_auth_config_connector import UpdateAuthConfigConnector
from .update_auth_config_connector_settings import UpdateAuthConfigConnectorSettings
from .update_auth_config_oauth_2 import UpdateAuthConfigOauth2
from .update_auth_config_oauth_2_client_auth_method import UpdateAuthConfigOauth2ClientAuthMethod
from .update_auth_config_oauth_2_extra_authorize_params import UpdateAuthConfigOauth2ExtraAuthorizeParams
from .update_auth_config_postgres import UpdateAuthConfigPostgres
from .update_auth_config_postgres_ssl_mode import UpdateAuthConfigPostgresSslMode
from .update_webhook import UpdateWebhook
from .webhook import Webhook
from .webhook_deliveries_response_200 import WebhookDeliveriesResponse200
from .webhook_delivery import WebhookDelivery
from .webhook_delivery_status import WebhookDeliveryStatus
from .webhook_replay import WebhookReplay
from .workspace import Workspace

__all__ = (
    "AgentConnectFlows",
    "ApiKey",
    "ApiKeyCredentials",
    "Approval",
    "ApprovalStatus",
    "AuditAccessResponse200",
    "AuditAccessResponse200ConnectionsItem",
    "AuditCheckpointsResponse200",
    "AuditConsistencyResponse200",
    "AuditCosignBody",
    "AuditCosignResponse201",
    "AuditEvent",
    "AuditEventActor",
    "AuditEventAggregate",
    "AuditEventsOrder",
    "AuditEventsResponse200",
    "AuditExportFormat",
    "AuthConfig",
    "AuthConfigAsOf",
    "AuthConfigAsOfAuthTypeType1",
    "AuthConfigAsOfSettingsType0",
    "AuthConfigAsOfStatus",
    "AuthConfigAuthType",
    "AuthConfigSettings",
    "AuthConfigStatus",
    "AuthConfigTestReport",
    "AuthConfigTestReportClass",
    "AuthConfigTestReportDriver",
    "AuthConfigVersionsResponse200",
    "AuthConfigVersionsResponse200ItemsItem",
    "BasicCredentials",
    "BearerTokenCredentials",
    "Checkpoint",
    "Connection",
    "ConnectionAsOf",
    "ConnectionList",
    "ConnectionStatus",
    "Connector",
    "CreateApiKey",
    "CreateApiKeyResponse201",
    "CreateAuthConfig",
    "CreateAuthConfigApiKey",
    "CreateAuthConfigApiKeyLocation",
    "CreateAuthConfigAuthType",
    "CreateAuthConfigBasic",
    "CreateAuthConfigBearerToken",
    "CreateAuthConfigConnector",
    "CreateAuthConfigConnectorSettings",
    "CreateAuthConfigNoAuth",
    "CreateAuthConfigOauth2",
    "CreateAuthConfigOauth2ClientAuthMethod",
    "CreateAuthConfigOauth2ExtraAuthorizeParams",
    "CreateAuthConfigPostgres",
    "CreateAuthConfigPostgresSslMode",
    "CreateConnection",
    "CreateConnectionNoAuth",
    "CreatedConnection",
    "CreateWebhook",
    "CreateWebhookResponse201",
    "DefinedTool",
    "DefinedToolSource",
    "DeleteAuthConfigResponse409",
    "DynamicCredential",
    "DynamicCredentialsPolicy",
    "DynamicCredentialsPolicyGrants",
    "ExecuteTool",
    "ExecuteToolArguments",
    "Gateway",
    "GatewayInput",
    "GatewayInputServersItem",
    "GatewayList",
    "GatewayServersItem",
    "GatewayStatus",
    "GrantRule",
    "GrantRulePrivilegesItem",
    "IdentityProvider",
    "InviteMember",
    "InviteMemberResponse201",
    "IssueDynamicCredentials",
    "Jwks",
    "JwksKeysItem",
    "ListApiKeysResponse200",
    "ListAuthConfigsResponse200",
    "ListConnectionsStatus",
    "ListMembersResponse200",
    "ListWebhooksResponse200",
    "McpBody",
    "McpBodyParams",
    "McpGatewayBody",
    "McpGatewayBodyParams",
    "McpGatewayResponse200",
    "McpPersonBody",
    "McpPersonBodyParams",
    "McpPersonGatewayBody",
    "McpPersonGatewayBodyParams",
    "McpPersonGatewayMetadataResponse200",
    "McpPersonGatewayResponse200",
    "McpPersonMetadataResponse200",
    "McpPersonResponse200",
    "McpResponse200",
    "Member",
    "MemberRole",
    "MemberRoleChange",
    "MemberStatus",
    "MeResponse200",
    "MyApprovalsResponse200",
    "MyConnectionsStatus",
    "Note",
    "PostgresCredentials",
    "Problem",
    "ProblemErrorsItem",
    "ProtectedResourceResponse200",
    "ReadyzResponse200",
    "Reason",
    "ReleasedToken",
    "ReplayWebhookResponse202",
    "RevokeConnection",
    "Role",
    "RotateWebhookSecretResponse200",
    "ScopedToken",
    "ScopedTokenRequest",
    "ScopedTokenStatus",
    "SecondFactorRequirement",
    "SignedEvent",
    "SignedEventBody",
    "SignedEventEnvelope",
    "SignedEventInclusionType1",
    "SignedEventSignaturesItem",
    "SignedEventSignaturesItemProblemType1",
    "TestAuthConfig",
    "ToolDefinition",
    "ToolDefinitionHeaders",
    "ToolDefinitionMethod",
    "ToolDefinitionParameters",
    "ToolDefinitionParametersProperties",
    "ToolDefinitionRisk",
    "ToolDefinitionUndo",
    "ToolDefinitionUndoBody",
    "ToolDefinitionUndoMethod",
    "ToolList",
    "ToolListItemsItem",
    "ToolResponseStorage",
    "ToolResult",
    "UndoneToolCall",
    "UpdateAuthConfig",
    "UpdateAuthConfigApiKey",
    "UpdateAuthConfigApiKeyLocation",
    "UpdateAuthConfigConnector",
    "UpdateAuthConfigConnectorSettings",
    "UpdateAuthConfigOauth2",
    "UpdateAuthConfigOauth2ClientAuthMethod",
    "UpdateAuthConfigOauth2ExtraAuthorizeParams",
    "UpdateAuthConfigPostgres",
    "UpdateAuthConfigPostgresSslMode",
    "UpdateWebhook",
    "Webhook",
    "WebhookDeliveriesResponse200",
    "WebhookDelivery",
    "WebhookDeliveryStatus",
    "WebhookReplay",
    "Workspace",
)
