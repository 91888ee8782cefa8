// The storage account the Functions host and the app share (AzureWebJobsStorage): tables for the
// connector's state, queues for its triggers (each with the poison queue the host moves a message
// to after maxDequeueCount failures), and the blob container Flex Consumption deploys from.
// Shared-key access is off: everything reaches it with Entra ID tokens.
param name string
param location string
param tags object

@description('Standard_LRS for a test environment; Standard_ZRS (or GZRS) for production.')
param skuName string

@allowed(['Enabled', 'Disabled'])
param publicNetworkAccess string

@description('Prefix of every table name (CONNECTOR_TABLE_PREFIX).')
param tablePrefix string

@description('The tables the code opens, without the prefix (tests/infra checks the list against lib/).')
param tableNames array

@description('The queues the code sends to or triggers on; each gets its -poison queue too.')
param queueNames array

param deploymentContainerName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: publicNetworkAccess
    dnsEndpointType: 'Standard'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: { enabled: true, keyType: 'Account' }
        file: { enabled: true, keyType: 'Account' }
        table: { enabled: true, keyType: 'Account' }
        queue: { enabled: true, keyType: 'Account' }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for table in tableNames: {
    parent: tableService
    name: '${tablePrefix}${table}'
  }
]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

// The host creates a poison queue on first use too; declaring it here lets an alert watch it
// from the first day.
var allQueues = flatten(map(queueNames, queue => [queue, '${queue}-poison']))

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [
  for queue in allQueues: {
    parent: queueService
    name: queue
  }
]

output name string = storage.name
output id string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
