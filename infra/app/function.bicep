// The Function App on Flex Consumption (Python 3.11) and every app setting it reads.
// The setting names are the code's (lib/settings.py); tests/infra/test_settings_covered.py
// compares the two, so a setting added to the code without a line here fails `make test`.
param name string
param planName string
param location string
param tags object

@description('The azd service this app hosts (azure.yaml services.<name>).')
param serviceName string

param identityId string
param identityClientId string
param storageBlobEndpoint string
param storageQueueEndpoint string
param storageTableEndpoint string
param deploymentContainerName string
param keyVaultUri string
param applicationInsightsConnectionString string

@description('Key Vault secret names, by what they hold (main.bicep secretNames).')
param secretNames object

@description('Key Vault certificate for GRAPH_NOTIFICATION_CERTIFICATE (its PEM secret has the same name). Empty: unset.')
param graphNotificationCertificateName string

@description('EHR client secret settings: EPIC gives EHR_SECRET_EPIC from secret ehr-secret-epic.')
param ehrSecretNames array

@allowed(['Enabled', 'Disabled'])
param publicNetworkAccess string

@allowed([512, 2048, 4096])
param instanceMemoryMB int

@description('Availability zones for the plan\'s instances (main.bicep zoneRedundant).')
param zoneRedundant bool

@description('Flex Consumption accepts 40 to 1000.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int

@description('Instances of the HTTP group kept warm, so a launch never waits on a cold start.')
@minValue(0)
param alwaysReadyHttpInstances int

@description('Concurrent HTTP invocations per instance (Flex defaults Python to 1).')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int

@description('Empty: https://{default host name}. Set it when a custom domain or Front Door fronts the app.')
param publicUrl string

@description('Front Door profile id (its X-Azure-FDID): when set, the app answers only requests through that Front Door. Empty: anyone.')
param frontDoorId string

@description('CONNECTOR_FRAME_ORIGINS: the ceiling on which origins may frame the app.')
param frameOrigins string

param tablePrefix string
param logLevel string
param entraTenantId string
param entraAuthorityHost string
param entraApiAudience string
param entraApiClientId string
param entraApiScope string
param entraClientId string
param graphBaseUrl string
param teamsJoinHosts string

// Behind Front Door (docs/deploy.md#behind-a-waf): only Front Door's addresses carrying this
// profile's id get through; deployments (scm) keep their own Entra-authenticated endpoint.
var frontDoorRules = [
  {
    name: 'front-door'
    action: 'Allow'
    priority: 100
    tag: 'ServiceTag'
    ipAddress: 'AzureFrontDoor.Backend'
    headers: {
      'x-azure-fdid': [frontDoorId]
    }
  }
]

func keyVaultReference(vaultUri string, secret string) string =>
  '@Microsoft.KeyVault(SecretUri=${vaultUri}secrets/${secret}/)'

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: publicNetworkAccess
    // Key Vault references resolve with the user-assigned identity, not a system one.
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      // No ftpsState: Flex Consumption has no FTP endpoint and lists the property among those
      // it does not take (functions-app-settings, "Flex Consumption plan deprecations"). FTP
      // publishing is off below (basicPublishingCredentialsPolicies ftp).
      http20Enabled: true
      ipSecurityRestrictionsDefaultAction: empty(frontDoorId) ? 'Allow' : 'Deny'
      ipSecurityRestrictions: empty(frontDoorId) ? [] : frontDoorRules
      scmIpSecurityRestrictionsUseMain: false
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
        alwaysReady: alwaysReadyHttpInstances > 0
          ? [
              {
                name: 'http'
                instanceCount: alwaysReadyHttpInstances
              }
            ]
          : []
        triggers: {
          http: {
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// No basic-auth publishing at all: azd deploys with an Entra token.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

var resolvedPublicUrl = empty(publicUrl) ? 'https://${site.properties.defaultHostName}' : publicUrl

// Read by the Functions host and its Python worker: identity-based storage (no AzureWebJobsStorage
// connection string), Application Insights with Entra ID (the app's traces use the same two,
// lib/telemetry.py), the worker's threads. FUNCTIONS_WORKER_RUNTIME and
// FUNCTIONS_EXTENSION_VERSION are not app settings on Flex Consumption (functionAppConfig.runtime).
var hostSettings = {
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: storageBlobEndpoint
  AzureWebJobsStorage__queueServiceUri: storageQueueEndpoint
  AzureWebJobsStorage__tableServiceUri: storageTableEndpoint
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // The worker runs our (synchronous) functions on a thread pool: one thread per concurrent
  // request the instance is given, or requests would queue inside it.
  PYTHON_THREADPOOL_THREAD_COUNT: string(httpPerInstanceConcurrency)
}

// Read by the connector (lib/settings.py). Secrets only as Key Vault references.
var connectorSettings = {
  CONNECTOR_PUBLIC_URL: resolvedPublicUrl
  CONNECTOR_TABLE_PREFIX: tablePrefix
  CONNECTOR_LOG_LEVEL: logLevel
  CONNECTOR_FRAME_ORIGINS: frameOrigins
  CONNECTOR_HASH_KEY: keyVaultReference(keyVaultUri, secretNames.hashKey)
  CONNECTOR_SEALING_KEYS: keyVaultReference(keyVaultUri, secretNames.sealingKeys)
  CONNECTOR_SIGNING_KEYS: keyVaultReference(keyVaultUri, secretNames.signingKeys)
  ENTRA_TENANT_ID: entraTenantId
  ENTRA_AUTHORITY_HOST: entraAuthorityHost
  ENTRA_API_AUDIENCE: entraApiAudience
  ENTRA_API_SCOPE: entraApiScope
  ENTRA_CLIENT_ID: entraClientId
  ENTRA_CLIENT_SECRET: keyVaultReference(keyVaultUri, secretNames.entraClientSecret)
  GRAPH_BASE_URL: graphBaseUrl
  TEAMS_JOIN_HOSTS: teamsJoinHosts
  GRAPH_TIMER_SCHEDULE: '0 */15 * * * *' // renews Graph subscriptions hours before they expire
}

// Only when the API has a registration of its own (ENTRA_API_CLIENT_ID is optional).
var apiClientSettings = empty(entraApiClientId) ? {} : { ENTRA_API_CLIENT_ID: entraApiClientId }

// Meeting call events (docs/deploy.md step 4): a certificate's private key and certificate are
// its secret of the same name. Declared here because every provisioning replaces the whole set
// of app settings: one set by hand would be gone after the next `azd provision`.
var graphSettings = empty(graphNotificationCertificateName)
  ? {}
  : { GRAPH_NOTIFICATION_CERTIFICATE: keyVaultReference(keyVaultUri, graphNotificationCertificateName) }

// Communication Services: its connection string is in Key Vault already (communication.bicep);
// the events secret (the webhook's ?secret=) is made by the postprovision hook.
var smsSettings = {
  ACS_CONNECTION_STRING: keyVaultReference(keyVaultUri, secretNames.communicationConnection)
  SMS_EVENTS_SECRET: keyVaultReference(keyVaultUri, secretNames.smsEventsSecret)
  SMS_TIMER_SCHEDULE: '0 * * * * *' // every minute: the timer finds what is due by minute
}

// Each endpoint names the setting holding its client secret (lib/endpoints/secrets.py).
var ehrSecretSettings = toObject(
  ehrSecretNames,
  ehr => 'EHR_SECRET_${toUpper(ehr)}',
  ehr => keyVaultReference(keyVaultUri, 'ehr-secret-${toLower(replace(ehr, '_', '-'))}')
)

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: union(
    hostSettings,
    connectorSettings,
    apiClientSettings,
    graphSettings,
    smsSettings,
    ehrSecretSettings
  )
}

output name string = site.name
output id string = site.id
output defaultHostName string = site.properties.defaultHostName
output publicUrl string = resolvedPublicUrl
