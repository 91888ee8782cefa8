// The connector in Azure: `azd up` provisions this and deploys the app (azure.yaml).
// Shaped like the Azure-Samples Flex Consumption azd templates (a resource group, small modules
// under app/, a user-assigned identity, role assignments in one module), with plain resources
// instead of registry modules so that every security property is in this repository, where
// tests/infra reads it. docs/deploy.md walks through a deployment.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('The azd environment name; with the subscription and region it makes the resource names unique.')
param environmentName string

@minLength(1)
@description('Region of every regional resource, and so where patient-adjacent data rests (data residency). Must offer Flex Consumption.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Resource group name; empty: rg-{environmentName}.')
param resourceGroupName string = ''

@description('The person (or pipeline) running azd: may write Key Vault secrets. azd fills it in.')
param principalId string = ''

@allowed(['User', 'ServicePrincipal', 'Group'])
param principalType string = 'User'

// --- Entra ID: the tenant and the app registrations (docs/deploy.md) --------------------------
@description('The tenant whose admins, approvers and clinicians use the connector.')
param entraTenantId string = tenant().tenantId

@minLength(1)
@description('The connector\'s app registration (client id): Graph meetings and the clinicians\' sign-in.')
param entraClientId string

@minLength(1)
@description('The API\'s Application ID URI, e.g. api://evc-connector (ENTRA_API_AUDIENCE).')
param entraApiAudience string

@description('The API\'s own client id when it is registered apart from the connector; empty: the same registration.')
param entraApiClientId string = ''

@description('The delegated scope the API exposes.')
param entraApiScope string = 'Connector.Access'

// --- the app ------------------------------------------------------------------------------------
@description('Empty: the Function App\'s own https host name. Set to the custom domain or Front Door URL that EHRs and browsers use.')
param publicUrl string = ''

@description('The only origins that may ever frame the app (the EHRs\' web clients, comma-separated https://host[:port]), whatever an endpoint\'s launch.ehr_origins say. Empty: the endpoints alone decide.')
param ehrFrameOrigins string = ''

@description('Comma-separated EHR client secret settings to create as Key Vault references: EPIC,CERNER gives EHR_SECRET_EPIC (secret ehr-secret-epic) and EHR_SECRET_CERNER.')
param ehrSecretNames string = ''

@description('The Key Vault certificate (content type PEM) Graph encrypts meeting call events to, read as GRAPH_NOTIFICATION_CERTIFICATE. Empty: no meeting subscriptions. Set here, not by hand: provisioning replaces every app setting.')
param graphNotificationCertificateName string = ''

@allowed(['DEBUG', 'INFO', 'WARNING', 'ERROR'])
param logLevel string = 'INFO'

@description('Hosts a browser may be sent to as a meeting join URL.')
param teamsJoinHosts string = 'teams.microsoft.com'

@description('Microsoft Graph; national clouds have their own.')
param graphBaseUrl string = 'https://graph.microsoft.com'

@description('Prefix of every table name, so several deployments can share one account.')
param tablePrefix string = 'evc'

// --- scale (Flex Consumption) ------------------------------------------------------------------
@description('HTTP instances kept warm so a clinician\'s launch never waits on a cold start (billed while idle). 0: none.')
@minValue(0)
param alwaysReadyHttpInstances int = 1

@description('Flex Consumption accepts 40 to 1000.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Concurrent HTTP requests per instance. The work is I/O (storage, EHR, Graph) on the worker\'s threads, so more than Flex\'s Python default of 1.')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 16

@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('Spread the app\'s instances over availability zones (the platform then keeps at least two always-ready HTTP instances, billed as such). Only in regions that offer it (az functionapp list-flexconsumption-locations --zone-redundant=true), and with zone-redundant storage (storageSku ZRS or GZRS).')
param zoneRedundant bool = false

// --- network and data ----------------------------------------------------------------------------
@description('The app must be reachable by EHRs and browsers; Disabled only behind a private Front Door origin.')
@allowed(['Enabled', 'Disabled'])
param appPublicNetworkAccess string = 'Enabled'

@description('Disabled needs VNet integration and private endpoints, which this template does not add.')
@allowed(['Enabled', 'Disabled'])
param storagePublicNetworkAccess string = 'Enabled'

@description('Disabled needs VNet integration and a private endpoint, which this template does not add.')
@allowed(['Enabled', 'Disabled'])
param keyVaultPublicNetworkAccess string = 'Enabled'

@description('The Front Door profile\'s id (X-Azure-FDID) when a WAF fronts the app: then only that Front Door reaches it. Empty: none.')
param frontDoorId string = ''

@allowed(['Standard_LRS', 'Standard_ZRS', 'Standard_GRS', 'Standard_GZRS'])
param storageSku string = 'Standard_ZRS'

@description('Purge protection cannot be turned off once on; off only for throwaway test environments.')
param keyVaultPurgeProtection bool = true

@description('Where Communication Services keeps its data at rest, e.g. United States, Europe, UK, Canada, Australia.')
param communicationDataLocation string = 'United States'

@description('Create the Event Grid subscription for inbound SMS and delivery reports. Event Grid validates the webhook on creation: turn on once the app is deployed (docs/deploy.md).')
param smsEventsEnabled bool = false

@description('Optional app registration (client id or Application ID URI) Event Grid authenticates to the webhook with.')
param smsEventsAudience string = ''

@minValue(30)
@maxValue(730)
param logRetentionInDays int = 30

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var serviceName = 'api'
var functionAppName = 'func-${resourceToken}'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(resourceToken, 7)}'

// The tables the code opens (lib/signin/sessions.py, lib/endpoints/audit.py, lib/visits/) and
// the queues it uses; tests/infra/test_storage_names.py reads lib/ and compares.
var tableNames = [
  'Config'
  'Sessions'
  'UsedStates'
  'UserMappings'
  'Sealed'
  'Visits'
  'VisitEvents'
  'SmsLedger'
  'SmsDue'
  'SmsOptOut'
  'SmsEvents'
  'SchedulingReplay'
  'PortalSignOuts'
  'GraphSubscriptions'
  'WritebackFailures'
  'VisitReports'
]
var queueNames = [
  'visit-events'
  'graph-tasks'
  'ehr-writeback'
]

// Key Vault secret names by what they hold; infra/hooks/postprovision.sh creates the keys and
// the SMS events secret.
var secretNames = {
  hashKey: 'connector-hash-key'
  sealingKeys: 'connector-sealing-keys'
  signingKeys: 'connector-signing-keys'
  entraClientSecret: 'entra-client-secret'
  communicationConnection: 'communication-connection-string'
  smsEventsSecret: 'sms-events-secret'
}

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    skuName: storageSku
    publicNetworkAccess: storagePublicNetworkAccess
    tablePrefix: tablePrefix
    tableNames: tableNames
    queueNames: queueNames
    deploymentContainerName: deploymentContainerName
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
    retentionInDays: logRetentionInDays
  }
}

module keyVault 'app/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
    publicNetworkAccess: keyVaultPublicNetworkAccess
    purgeProtection: keyVaultPurgeProtection
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsId
  }
}

module communication 'app/communication.bicep' = {
  name: 'communication'
  scope: rg
  params: {
    name: 'acs-${resourceToken}'
    tags: tags
    dataLocation: communicationDataLocation
    keyVaultName: keyVault.outputs.name
    connectionSecretName: secretNames.communicationConnection
  }
}

// After the role assignments: the host reads its package and storage, and the platform resolves
// the Key Vault references, as soon as the app exists.
module function 'app/function.bicep' = {
  name: 'function'
  scope: rg
  dependsOn: [
    rbac
  ]
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    serviceName: serviceName
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageQueueEndpoint: storage.outputs.queueEndpoint
    storageTableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: deploymentContainerName
    keyVaultUri: keyVault.outputs.uri
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    secretNames: secretNames
    graphNotificationCertificateName: graphNotificationCertificateName
    ehrSecretNames: filter(map(split(ehrSecretNames, ','), name => trim(name)), name => !empty(name))
    publicNetworkAccess: appPublicNetworkAccess
    instanceMemoryMB: instanceMemoryMB
    zoneRedundant: zoneRedundant
    maximumInstanceCount: maximumInstanceCount
    alwaysReadyHttpInstances: alwaysReadyHttpInstances
    httpPerInstanceConcurrency: httpPerInstanceConcurrency
    publicUrl: publicUrl
    frontDoorId: frontDoorId
    frameOrigins: ehrFrameOrigins
    tablePrefix: tablePrefix
    logLevel: logLevel
    entraTenantId: entraTenantId
    entraAuthorityHost: environment().authentication.loginEndpoint
    entraApiAudience: entraApiAudience
    entraApiClientId: entraApiClientId
    entraApiScope: entraApiScope
    entraClientId: entraClientId
    graphBaseUrl: graphBaseUrl
    teamsJoinHosts: teamsJoinHosts
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    appPrincipalId: identity.outputs.principalId
    deployerPrincipalId: principalId
    deployerPrincipalType: principalType
  }
}

// The events secret, read from the vault at deployment (made by the postprovision hook).
resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = if (smsEventsEnabled) {
  name: 'kv-${resourceToken}'
  scope: rg
}

module smsEvents 'app/sms-events.bicep' = if (smsEventsEnabled) {
  name: 'sms-events'
  scope: rg
  params: {
    topicName: 'evgt-${resourceToken}'
    tags: tags
    communicationServicesId: communication.outputs.id
    webhookUrl: '${function.outputs.publicUrl}/api/sms/events'
    webhookSecret: vault.getSecret(secretNames.smsEventsSecret)
    webhookAudience: smsEventsAudience
  }
}

// What azd keeps in .azure/<env>/.env, the hook reads, and docs/deploy.md refers to. No secrets.
output AZURE_LOCATION string = location
// The tenant of the subscription deployed to, which azd and the Azure SDKs read AZURE_TENANT_ID
// as; the connector's Entra tenant may be another one (ENTRA_TENANT_ID).
output AZURE_TENANT_ID string = tenant().tenantId
output ENTRA_TENANT_ID string = entraTenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_NAME string = function.outputs.name
output SERVICE_API_NAME string = function.outputs.name
output CONNECTOR_PUBLIC_URL string = function.outputs.publicUrl
output CONNECTOR_REDIRECT_URI string = '${function.outputs.publicUrl}/api/launch/callback'
output CONNECTOR_JWKS_URL string = '${function.outputs.publicUrl}/api/.well-known/jwks.json'
output CONNECTOR_CONFIG_API string = '${function.outputs.publicUrl}/api/config'
output SMS_EVENTS_WEBHOOK_URL string = '${function.outputs.publicUrl}/api/sms/events'
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_URI string = keyVault.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_COMMUNICATION_SERVICES_NAME string = communication.outputs.name
output AZURE_COMMUNICATION_SERVICES_ENDPOINT string = communication.outputs.endpoint
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output APPLICATIONINSIGHTS_CONNECTION_STRING string = monitoring.outputs.connectionString
