// The vault holding every secret the app reads: the hash key, the sealing keys, our signing
// keys, the Entra client secret, each EHR client secret (EHR_SECRET_*) and the Communication
// Services connection. RBAC mode only (no access policies); the app reads through Key Vault
// references with its managed identity. Values are never in this template: infra/hooks/
// postprovision.sh generates the keys once, and operators set the secrets they own.
param name string
param location string
param tags object

@allowed(['Enabled', 'Disabled'])
param publicNetworkAccess string

@description('Purge protection cannot be turned off again; leave it on for production.')
param purgeProtection bool

@description('The Log Analytics workspace the vault\'s audit log goes to.')
param logAnalyticsWorkspaceId string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    // main.bicep hands the SMS events secret to the Event Grid subscription with getSecret(), a
    // Key Vault reference that Resource Manager resolves only from a vault that allows template
    // deployment (and only for a caller holding Microsoft.KeyVault/vaults/deploy/action, as
    // Owner and Contributor do). Virtual machines and disk encryption get nothing.
    enabledForTemplateDeployment: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    // The API accepts true or nothing: false is refused.
    enablePurgeProtection: purgeProtection ? true : null
    publicNetworkAccess: publicNetworkAccess
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

// Who read or changed which secret, and when (AuditEvent): the record a security review asks
// for when the vault holds the keys to patient-adjacent data. Kept as long as the workspace
// keeps logs (logRetentionInDays in main.bicep).
resource audit 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit-to-log-analytics'
  scope: vault
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        categoryGroup: 'audit'
        enabled: true
      }
    ]
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
