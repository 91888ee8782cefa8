// Inbound texts and delivery reports: Communication Services publishes them to an Event Grid
// system topic, and one subscription delivers both to the app's webhook (Event Grid schema).
// Event Grid validates a webhook when the subscription is created, so this module runs only
// once the app is deployed and answers the validation handshake (smsEventsEnabled in main), and
// once the postprovision hook has made the events secret in Key Vault (after the first azd up).
param topicName string
param tags object
param communicationServicesId string

@description('https://{app}/api/sms/events')
param webhookUrl string

@secure()
@description('The app\'s SMS_EVENTS_SECRET (Key Vault secret sms-events-secret): the webhook refuses events without it.')
param webhookSecret string

@description('Optional: the app registration (client id or Application ID URI) Event Grid gets a token for, so the webhook can require an Entra bearer token. Empty: none.')
param webhookAudience string

var smsEventTypes = [
  'Microsoft.Communication.SMSReceived'
  'Microsoft.Communication.SMSDeliveryReportReceived'
]

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: topicName
  location: 'global'
  tags: tags
  properties: {
    source: communicationServicesId
    topicType: 'Microsoft.Communication.CommunicationServices'
  }
}

resource smsEvents 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: topic
  name: 'sms-to-connector'
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    destination: {
      endpointType: 'WebHook'
      properties: union(
        {
          endpointUrl: '${webhookUrl}?secret=${webhookSecret}'
          maxEventsPerBatch: 10
          preferredBatchSizeInKilobytes: 64
        },
        empty(webhookAudience)
          ? {}
          : {
              azureActiveDirectoryTenantId: tenant().tenantId
              azureActiveDirectoryApplicationIdOrUri: webhookAudience
            }
      )
    }
    filter: {
      includedEventTypes: smsEventTypes
    }
    // Retried with backoff for a day, then dropped. No dead-letter container on purpose: an SMS
    // event carries the phone number and the text, which must not sit in a blob.
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}

output topicName string = topic.name
output eventTypes array = smsEventTypes
