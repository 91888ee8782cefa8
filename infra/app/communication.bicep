// Communication Services for SMS. Its connection string goes straight from the resource into
// Key Vault (never through a parameter or an output); the app reads it as a Key Vault reference.
// Phone numbers are bought afterwards (docs/deploy.md): a number is not a Bicep resource.
param name string
param tags object

@description('Where Communication Services keeps its data at rest (data residency), e.g. United States, Europe, UK.')
param dataLocation string

param keyVaultName string
param connectionSecretName string

resource communication 'Microsoft.Communication/communicationServices@2023-04-01' = {
  name: name
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
  }
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource connectionSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: connectionSecretName
  properties: {
    value: communication.listKeys().primaryConnectionString
    contentType: 'Communication Services connection string'
  }
}

output name string = communication.name
output id string = communication.id
output endpoint string = 'https://${communication.properties.hostName}'
