"""The error catalogue: every failure a person or a client can meet, with a code.

Each entry has the HTTP status, a plain sentence for the person in front of it (a clinician, a
patient, an admin), and what the admin should fix. The README's error table is generated from this
list (`python -m lib.web.errors`) and a test compares the two, so the docs never drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ErrorDef:
    code: str
    status: int
    title: str
    sentence: str
    fix: str


_ENTRIES: list[ErrorDef] = [
    # --- requests in general -------------------------------------------------------------------
    ErrorDef("REQ-NOT-FOUND", 404, "Not found",
             "There is nothing at this address.",
             "Check the URL; integration records list the addresses to use."),
    ErrorDef("REQ-METHOD", 405, "Method not allowed",
             "This address does not accept that kind of request.",
             "Use the method the API documentation gives for this route."),
    ErrorDef("REQ-BAD-JSON", 400, "Body is not valid JSON",
             "The request body could not be read as JSON.",
             "Send a JSON object with Content-Type: application/json."),
    ErrorDef("REQ-VALIDATION", 422, "Invalid request",
             "Some fields of the request are missing or not valid.",
             "See `errors` in the answer: each names a field and what is wrong with it."),
    ErrorDef("REQ-TOO-LARGE", 413, "Request too large",
             "The request body is larger than this endpoint accepts.",
             "Send a smaller body; the limit is in the API documentation."),
    ErrorDef("REQ-UNSUPPORTED-MEDIA", 415, "Unsupported media type",
             "The request body has a content type this endpoint does not accept.",
             "Send Content-Type: application/json."),
    # --- admin API authentication ---------------------------------------------------------------
    ErrorDef("AUTH-MISSING-TOKEN", 401, "Sign-in required",
             "This API needs a Microsoft Entra ID access token.",
             "Send Authorization: Bearer <token> for the connector's app registration."),
    ErrorDef("AUTH-INVALID-TOKEN", 401, "Token not accepted",
             "The access token is not valid for this API.",
             "Get a new token for the connector's Application ID URI from your tenant."),
    ErrorDef("AUTH-EXPIRED-TOKEN", 401, "Token expired",
             "The access token has expired.",
             "Get a new token; Entra ID tokens last about an hour."),
    ErrorDef("AUTH-WRONG-AUDIENCE", 401, "Token for another application",
             "The access token was issued for a different application.",
             "Request the token for the connector's Application ID URI (ENTRA_API_AUDIENCE)."),
    ErrorDef("AUTH-WRONG-TENANT", 403, "Wrong organization",
             "The access token comes from a different Microsoft 365 organization.",
             "Sign in with an account of the tenant the connector is deployed for."),
    ErrorDef("AUTH-FORBIDDEN-ROLE", 403, "Not allowed",
             "Your account does not have the role this action needs.",
             "Assign the app role (Connector.Admin, Connector.Approver or Connector.Reader) "
             "in Entra ID > Enterprise applications."),
    ErrorDef("AUTH-KEYS-UNAVAILABLE", 503, "Sign-in keys unavailable",
             "The connector could not fetch Microsoft Entra ID signing keys right now.",
             "Check outbound access to the Entra ID authority host; try again shortly."),
    # --- admin portal (browser sign-in) ---------------------------------------------------------
    ErrorDef("PORTAL-SIGNED-OUT", 401, "Signed out",
             "Your portal session has ended: you signed out, were idle too long, or reached the "
             "session's time limit.",
             "Sign in again at /api/portal; the idle and absolute limits are in docs/portal.md."),
    ErrorDef("PORTAL-CSRF", 403, "Form not accepted",
             "This form could not be accepted: it was not sent from this portal's own page "
             "in your current session.",
             "Reload the page and submit the form again; links to portal actions from other "
             "sites are refused on purpose."),
    ErrorDef("PORTAL-SIGNIN-FAILED", 502, "Portal sign-in failed",
             "The Microsoft sign-in for the admin portal did not complete.",
             "Check ENTRA_CLIENT_ID / ENTRA_CLIENT_SECRET and that the account is in this "
             "tenant; the log line names the reason."),
    # --- configuration --------------------------------------------------------------------------
    # --- reports ---------------------------------------------------------------------------------
    ErrorDef("RPT-BAD-RANGE", 400, "Report range not valid",
             "The report's dates do not make a range it can cover.",
             "Give from and to as yyyy-mm-dd, from not after to, at most 400 days; or a preset."),
    ErrorDef("RPT-BAD-CONTINUATION", 400, "Continuation not valid",
             "The continuation token is not one this report gave.",
             "Pass the `continuation` of the previous page unchanged, or start again without it."),
    ErrorDef("CFG-ENDPOINT-NOT-FOUND", 404, "Endpoint not found",
             "No FHIR endpoint is registered under that name.",
             "List the endpoints (GET /api/config/endpoints) for the right name."),
    ErrorDef("CFG-ENDPOINT-EXISTS", 409, "Endpoint already registered",
             "An endpoint with that name or FHIR base URL is already registered.",
             "Choose another id, or update the existing endpoint."),
    ErrorDef("CFG-IF-MATCH-REQUIRED", 428, "If-Match required",
             "Changes need the version you read, so two admins cannot overwrite each other.",
             "Send If-Match with the ETag from GET /api/config/endpoints/{id}."),
    ErrorDef("CFG-STALE-ETAG", 412, "Changed meanwhile",
             "The endpoint changed since you read it.",
             "Read it again (GET), re-apply your change, and send the new ETag."),
    ErrorDef("CFG-APPROVER-REQUIRED", 422, "Approver required",
             "Epic endpoints need a named approver (the EHR analyst who confirms access).",
             "Give approver.oid and approver.display_name of an Entra user."),
    # PATCH approver: null is schema-valid (it removes a Cerner or SMART endpoint's approver); on
    # an Epic endpoint it meets the endpoint's state, not a bad field: 409, like the other states.
    ErrorDef("CFG-APPROVER-NOT-REMOVABLE", 409, "Approver cannot be removed",
             "An Epic endpoint keeps its named approver: it can be replaced, not removed.",
             "Send another approver (oid and display_name) instead of null."),
    ErrorDef("CFG-SECRET-NAME-REFUSED", 422, "Not a client secret setting",
             "An endpoint may name only an app setting of the form EHR_SECRET_...: the "
             "connector's own settings can never be sent to an EHR.",
             "Put the EHR's client secret in an app setting named EHR_SECRET_<something> (in "
             "Azure a Key Vault reference) and name that one."),
    ErrorDef("CFG-SECRET-HOST-UNAPPROVED", 422, "The secret is bound to another token host",
             "This client secret was first validated against another EHR's token endpoint; "
             "sending it to this one needs a second person's approval.",
             "Someone with the Connector.Approver role, not you, approves the host: POST "
             "/api/config/secrets/{setting}/hosts with {\"host\": ...}; then re-validate."),
    ErrorDef("CFG-SECRET-HOST-NOT-PENDING", 404, "No such request",
             "Nobody asked for this secret to be sent to that host.",
             "Validate the endpoint first: its problem names the setting and the host."),
    ErrorDef("CFG-SECOND-PERSON-REQUIRED", 403, "Another person must approve",
             "The person who asked for a secret to go to a new host cannot approve it.",
             "Ask someone else with the Connector.Approver role."),
    ErrorDef("CFG-SECRET-SETTING-MISSING", 422, "Client secret setting not found",
             "The app setting named for the client secret does not exist.",
             "Add the app setting (in Azure a Key Vault reference) and restart, then re-validate."),
    ErrorDef("CFG-SIGNING-KEY-MISSING", 422, "No signing key",
             "private_key_jwt needs the connector's signing key, and none is configured.",
             "Set CONNECTOR_SIGNING_KEYS (a Key Vault reference in Azure)."),
    ErrorDef("CFG-NOT-APPROVER", 403, "Not the named approver",
             "Only the approver named for this endpoint can approve or reject it.",
             "Sign in as the named approver, or have an admin change the approver."),
    ErrorDef("CFG-NOT-APPROVABLE", 409, "Nothing to approve",
             "This endpoint cannot be approved in its current state.",
             "Only valid Epic endpoints awaiting approval (or rejected ones) can be approved."),
    ErrorDef("CFG-PRODUCTION-NEEDS-TEST", 409, "Test endpoint needed first",
             "A production endpoint can be activated only after the same organization has an "
             "active, validated test endpoint.",
             "Register, validate (and for Epic approve) a test endpoint for this organization."),
    ErrorDef("CFG-NOT-ACTIVE", 409, "Endpoint not active",
             "This endpoint is not active yet, so its integration records are not final.",
             "Validate it, and for Epic have the approver approve it."),
    ErrorDef("CFG-MAPPING-NOT-FOUND", 404, "Mapping not found",
             "No clinician mapping with that key exists for this endpoint.",
             "List the mappings (GET .../mappings) for the right key."),
    ErrorDef("CFG-BAD-QUERY", 400, "Invalid query",
             "A query parameter is not valid.",
             "See `detail`; dates are ISO 8601 and pageSize is 1 to 200."),
    # --- SMART sign-in callback (launches and approvals) -------------------------------------
    ErrorDef("LAUNCH-STATE-MISSING", 400, "Sign-in not recognised",
             "This sign-in was not started here, or its link is incomplete.",
             "Start again from the EHR; if it repeats, check the redirect URI registered in the "
             "EHR is exactly the one in the integration records."),
    ErrorDef("LAUNCH-STATE-EXPIRED", 400, "Sign-in took too long",
             "This sign-in expired. Please start again.",
             "Sign-ins must complete within 10 minutes."),
    ErrorDef("LAUNCH-STATE-REUSED", 400, "Sign-in already used",
             "This sign-in was already completed. Please start again.",
             "A browser back button or a replayed link reuses a finished sign-in."),
    ErrorDef("LAUNCH-BROWSER-MISMATCH", 400, "Sign-in from another browser",
             "This sign-in was started in another browser. Please start again from the EHR.",
             "Sign-ins must finish in the browser that started them: sign-in links must not be "
             "shared, and the browser must accept the connector's cookie (in an EHR iframe: "
             "partitioned third-party cookies)."),
    ErrorDef("LAUNCH-EHR-ERROR", 400, "The EHR refused the sign-in",
             "The EHR did not complete the sign-in.",
             "See the EHR's message shown with this code; check the app's EHR registration."),
    ErrorDef("LAUNCH-CALLBACK-ISS", 400, "Sign-in answered by another server",
             "The sign-in answer came from a server other than the one it was sent to.",
             "Possible mix-up attack or misconfiguration: compare the endpoint's issuer."),
    # --- EHR launch (clinicians and patients) ---------------------------------------------------
    ErrorDef("LAUNCH-UNKNOWN-ENDPOINT", 404, "Virtual visits are not set up here",
             "This EHR is not connected to virtual visits.",
             "The launch URL names an endpoint that is not registered; copy the launch URL from "
             "the integration records."),
    ErrorDef("LAUNCH-ENDPOINT-DISABLED", 403, "Virtual visits are switched off",
             "Virtual visits are switched off for this EHR.",
             "An admin disabled the endpoint; enable it (POST .../enable) when ready."),
    ErrorDef("LAUNCH-ENDPOINT-NOT-ACTIVE", 409, "Virtual visits are not ready yet",
             "Virtual visits are not ready for this EHR yet.",
             "The endpoint is not active: validate it, and for Epic have the approver approve it."),
    ErrorDef("LAUNCH-MISSING-PARAM", 400, "Launch incomplete",
             "The EHR opened this page without the information it needs.",
             "The EHR must open the launch URL with both iss and launch parameters."),
    ErrorDef("LAUNCH-ISS-MISMATCH", 400, "Launch from an unknown EHR",
             "This launch came from an EHR server this link is not set up for.",
             "The iss sent by the EHR must equal the endpoint's FHIR base URL exactly; check the "
             "launch URL configured in the EHR."),
    ErrorDef("LAUNCH-ENV-MISMATCH", 400, "Test and production mixed up",
             "This launch mixes a test EHR with a production setup (or the reverse).",
             "Configure the test EHR with the test endpoint's launch URL and production with "
             "production's."),
    ErrorDef("LAUNCH-SCOPE-NOT-GRANTED", 403, "Permission missing",
             "The EHR did not grant the permissions a virtual visit needs.",
             "Add the missing scopes (in the detail) to the app's registration in the EHR."),
    ErrorDef("LAUNCH-NO-APPOINTMENT", 422, "No appointment selected",
             "Open the virtual visit from an appointment or an encounter.",
             "The EHR sent no appointment or encounter context; check the launch configuration "
             "(Epic: the appointment context; Cerner: launch from the encounter)."),
    ErrorDef("LAUNCH-BAD-CONTEXT", 502, "The EHR sent an unusable launch context",
             "The EHR named the appointment, encounter, patient or user in a form we cannot use.",
             "The EHR must send FHIR ids ([A-Za-z0-9-.], at most 64 characters) or references; "
             "check the launch context and the endpoint's field_map."),
    ErrorDef("LAUNCH-NO-USER", 422, "The EHR did not say who you are",
             "The EHR did not identify the signed-in user.",
             "The EHR must grant openid fhirUser (or Cerner's user field; Epic: map ehr_user_id "
             "in the endpoint's field_map)."),
    ErrorDef("LAUNCH-NO-ORGANIZER", 409, "The visit has not started yet",
             "Your clinician has not opened this visit yet. Please try again in a few minutes.",
             "Set a default organizer on the endpoint so patients can arrive first."),
    ErrorDef("LAUNCH-MS-SIGNIN-FAILED", 502, "Microsoft sign-in failed",
             "Signing in to Microsoft did not complete.",
             "Check the connector's Entra app registration (redirect URI, secret) and that the "
             "clinician's account is in this tenant."),
    ErrorDef("LAUNCH-REDIRECT-REFUSED", 502, "Meeting link refused",
             "The meeting link did not look like a Teams link, so we did not open it.",
             "Join URLs must be on the allowed Teams hosts (TEAMS_JOIN_HOSTS)."),
    ErrorDef("VISIT-LINK-INVALID", 404, "Visit link not valid",
             "This visit link is not valid or has expired. Open the visit again from the EHR.",
             "Visit page links are signed and expire; launch again from the EHR."),
    # --- Microsoft Graph ----------------------------------------------------------------------
    ErrorDef("GRAPH-THROTTLED", 503, "Teams is busy",
             "Microsoft Teams is busy right now. Please try again in a minute.",
             "Graph kept answering 429/503 after retries; check the tenant's Graph usage."),
    ErrorDef("GRAPH-FAILED", 502, "Teams meeting could not be prepared",
             "The Teams meeting could not be prepared.",
             "See the Graph error code in the detail; check the app's Graph permissions and the "
             "application access policy for online meetings."),
    ErrorDef("GRAPH-ORGANIZER-UNKNOWN", 409, "Organizer not found",
             "The meeting organizer's Microsoft account was not found.",
             "The mapped Entra user no longer exists; remove the mapping or fix the default "
             "organizer."),
    ErrorDef("GRAPH-NOTIFICATION-INVALID", 400, "Notification not readable",
             "This is not a Microsoft Graph change notification the connector can read.",
             "POST /api/graph/notifications takes Graph's {\"value\": [...]} body or a "
             "?validationToken= handshake; encrypted content must be for "
             "GRAPH_NOTIFICATION_CERTIFICATE and match its dataSignature."),
    ErrorDef("GRAPH-NOTIFICATION-REFUSED", 401, "Notification refused",
             "The notification's clientState does not match its subscription, or a "
             "collection with resource data has no valid Graph validation token.",
             "Only Graph knows a subscription's clientState, and only Graph's publisher gets "
             "validation tokens for our app; a forged or replayed-elsewhere notification is "
             "refused. If Graph's own are refused, the log says why (`graph validation tokens "
             "failed`: audience = ENTRA_CLIENT_ID, issuer = our tenant); else recreate the "
             "subscription."),
    # --- FHIR endpoint discovery (validation at configuration time, and at launch) ------------
    ErrorDef("DISC-UNREACHABLE", 502, "FHIR server unreachable",
             "The EHR's FHIR server could not be reached.",
             "Check the FHIR base URL, DNS and that the server accepts connections from Azure."),
    ErrorDef("DISC-TLS", 502, "FHIR server certificate not trusted",
             "The EHR's FHIR server presented a certificate that is not trusted.",
             "The server needs a valid certificate from a public CA matching its host name."),
    ErrorDef("DISC-ADDRESS-NOT-ALLOWED", 422, "Address not allowed",
             "That FHIR base URL points to an address the connector may not call.",
             "Use a public https URL; loopback, private and link-local addresses are refused."),
    ErrorDef("DISC-REDIRECT", 502, "Discovery redirected elsewhere",
             "The EHR's discovery document redirected to another host.",
             "Register the FHIR base URL the EHR publishes, not one that redirects."),
    ErrorDef("DISC-HTTP-STATUS", 502, "Discovery failed",
             "The EHR's SMART configuration could not be fetched.",
             "The server must answer GET {base}/.well-known/smart-configuration with 200."),
    ErrorDef("DISC-NOT-JSON", 502, "Discovery is not JSON",
             "The EHR's SMART configuration is not a JSON document.",
             "Check the FHIR base URL: it may point at a web page instead of a FHIR server."),
    ErrorDef("DISC-TOO-LARGE", 502, "Discovery too large",
             "The EHR's SMART configuration is larger than the connector accepts.",
             "Check the FHIR base URL; a SMART configuration is a few kilobytes."),
    ErrorDef("DISC-MISSING-TOKEN-ENDPOINT", 422, "No token endpoint",
             "The EHR's SMART configuration has no token endpoint.",
             "The server must publish token_endpoint; ask the EHR team to enable SMART."),
    ErrorDef("DISC-MISSING-AUTHORIZE-ENDPOINT", 422, "No authorization endpoint",
             "The EHR's SMART configuration has no authorization endpoint.",
             "The server must publish authorization_endpoint for EHR launch."),
    ErrorDef("DISC-NO-S256", 422, "PKCE S256 not supported",
             "The EHR does not offer PKCE with S256, which the connector requires.",
             "code_challenge_methods_supported must contain S256."),
    ErrorDef("DISC-PLAIN-PKCE", 422, "Insecure PKCE offered",
             "The EHR offers the insecure 'plain' PKCE method.",
             "SMART 2 forbids 'plain' in code_challenge_methods_supported; ask the EHR team."),
    ErrorDef("DISC-NO-CLIENT-AUTH", 422, "No usable client authentication",
             "The EHR does not support the client authentication this endpoint is set to use.",
             "Pick client_secret_basic or private_key_jwt as listed in "
             "token_endpoint_auth_methods_supported."),
    ErrorDef("DISC-NO-OPENID", 422, "No OpenID Connect",
             "The EHR does not publish what is needed to check who signed in.",
             "The server must support sso-openid-connect (issuer and jwks_uri)."),
    ErrorDef("DISC-FHIR-VERSION", 422, "FHIR version not supported",
             "The FHIR base URL serves a FHIR version the connector does not support.",
             "Register the R4 base URL (Epic: .../api/FHIR/R4, Cerner: .../r4/{tenant})."),
    ErrorDef("DISC-HOSTS-MOVED", 409, "EHR sign-in moved",
             "The EHR's sign-in addresses changed since this endpoint was approved.",
             "An admin re-validates the endpoint (POST .../validate) to accept the new hosts."),
    # --- OAuth token and id_token handling ----------------------------------------------------
    ErrorDef("TOKEN-EXCHANGE-FAILED", 502, "Sign-in could not be completed",
             "The EHR did not accept the sign-in (token exchange failed).",
             "Check the client id, secret or key registration, and the redirect URI in the EHR."),
    ErrorDef("TOKEN-ID-TOKEN-INVALID", 502, "Identity could not be verified",
             "The EHR's identity token could not be verified.",
             "Check the EHR's issuer and JWKS; the clock of both systems; the client id."),
    # --- SMS ------------------------------------------------------------------------------------
    ErrorDef("SMS-CONSENT-REQUIRED", 409, "SMS consent first",
             "Texts can be set up only after both consent statements are recorded.",
             "An admin records them: PUT /api/config/sms/consent with both set to true."),
    ErrorDef("SMS-NOT-CONFIGURED", 409, "Communication Services not set up",
             "This deployment has no Communication Services resource to send texts with.",
             "Set ACS_CONNECTION_STRING (in Azure a Key Vault reference) and restart the app."),
    ErrorDef("SMS-PROVIDER-REFUSED", 502, "Communication Services refused",
             "Communication Services refused the request.",
             "Check ACS_CONNECTION_STRING (key and endpoint) and the detail given."),
    ErrorDef("SMS-NUMBER-NOT-FOUND", 404, "Number not in the resource",
             "That phone number is not one of the Communication Services resource's numbers.",
             "List the numbers (GET /api/config/sms/numbers) or order one."),
    ErrorDef("SMS-ORDER-NOT-FOUND", 404, "Order not found",
             "There is no phone number order with that id.",
             "Use the status URL the order's 202 answer gave."),
    ErrorDef("SMS-NUMBER-NOT-LINKED", 409, "No number linked",
             "Texts cannot be switched on for an endpoint that has no phone number.",
             "Link a number to the endpoint first (PUT /api/config/sms/numbers/{number})."),
    ErrorDef("SMS-ORGANIZATION-NAME-REQUIRED", 409, "Organization name required",
             "Texts name the organization, and this endpoint has no organization name yet.",
             "Set organization_name in the endpoint's SMS settings."),
    ErrorDef("SMS-CERTIFICATE-NOT-FOUND", 404, "No intake certificate",
             "No certificate to verify scheduling messages is uploaded for this environment.",
             "Upload the interface engine's public certificate (PUT .../certificates/{env})."),
    ErrorDef("SMS-CERT-INVALID", 422, "Certificate not usable",
             "The certificate could not be used to verify scheduling messages.",
             "Upload the interface engine's public certificate (PEM or base64 DER; RSA 2048+ "
             "or EC P-256/P-384), not expired, without its private key."),
    ErrorDef("SMS-EVENTS-REFUSED", 401, "Events not accepted",
             "The events endpoint needs its shared secret.",
             "The Event Grid subscription's URL ends in ?secret=<SMS_EVENTS_SECRET>."),
    ErrorDef("SMS-LINK-INVALID", 404, "This link does not work",
             "This visit link is not valid. Please use the link in the newest text from your "
             "clinic, or call the clinic.",
             "The token was changed, cut short, or names a visit that is gone (after cleanup)."),
    ErrorDef("SMS-LINK-EARLY", 403, "Too early to join",
             "Your visit is not open yet. Please use the same link closer to your appointment.",
             "The endpoint's SMS join window (join_window.before_minutes) sets when links open."),
    ErrorDef("SMS-LINK-EXPIRED", 410, "This link has expired",
             "This visit link has expired. If you still need your visit, please call the clinic.",
             "Links close join_window.after_minutes after the appointment's end."),
    ErrorDef("SMS-LINK-SUPERSEDED", 410, "Your appointment moved",
             "Your appointment was changed. Please use the link in the newest text.",
             "A reschedule (SIU S13/S14) raised the schedule version: older links stop working."),
    ErrorDef("SMS-LINK-CANCELLED", 410, "Appointment cancelled",
             "This appointment was cancelled. Please call the clinic if you need a new one.",
             "The EHR sent a cancellation (SIU S15/S17) for this appointment."),
    ErrorDef("SMS-OFF-FOR-ENDPOINT", 409, "Texts are off",
             "Texts cannot be sent for this organization yet.",
             "An admin links a number and switches texts on (PATCH /api/config/sms/endpoints)."),
    ErrorDef("SMS-PHONE-UNAVAILABLE", 409, "Phone number not available",
             "The patient's phone number could not be read from the EHR just now.",
             "Open the visit again from the EHR (its sign-in has expired), then press the button."),
    ErrorDef("SMS-NO-MOBILE", 422, "No number to text",
             "The patient's chart has no phone number that can receive texts.",
             "Add the patient's mobile number in the EHR (Patient.telecom), then try again."),
    ErrorDef("SMS-PHONE-CHANGED", 409, "Phone number changed",
             "The patient's phone number changed in the EHR since you confirmed it.",
             "Press the button again and check the number shown before confirming."),
    # --- scheduling intake --------------------------------------------------------------------
    ErrorDef("SCHED-SIGNATURE-MISSING", 401, "Signature missing",
             "The scheduling message has no X-EVC-Signature header.",
             "Sign each message (docs/sms.md: detached JWS over the exact body)."),
    ErrorDef("SCHED-SIGNATURE-INVALID", 401, "Signature not valid",
             "The scheduling message's signature does not verify with the uploaded certificate.",
             "Sign with the private key of the certificate uploaded for this environment."),
    ErrorDef("SCHED-SIGNATURE-STALE", 401, "Signature too old",
             "The signature's iat is more than 5 minutes from now.",
             "Sign each message when it is sent; check the interface engine's clock (NTP)."),
    ErrorDef("SCHED-SIGNATURE-REPLAYED", 401, "Message already received",
             "A message with this signature's jti was already received.",
             "Give every message (and every resend) a new jti."),
    ErrorDef("SCHED-NO-CERTIFICATE", 409, "No certificate for this environment",
             "No certificate is uploaded to verify this environment's scheduling messages.",
             "An admin uploads it: PUT /api/config/sms/certificates/{environment}."),
    ErrorDef("SCHED-BAD-MESSAGE", 400, "Scheduling message not usable",
             "The scheduling message could not be read as SIU or a FHIR Appointment.",
             "See the detail; docs/sms.md lists the fields read from each format."),
    # --- EHR write-back (the dead-letter table's reasons, and the config routes over it) -------
    ErrorDef("WB-AUTH-MISSING", 422, "Write-back needs credentials",
             "Write-back is switched on but says nothing about how to authenticate to the EHR.",
             "Set writeback.auth: backend_services (client id, scopes, alg) or, for Epic's "
             "telehealth service, service_account."),
    ErrorDef("WB-BACKEND-TOKEN-FAILED", 422, "Backend services token refused",
             "The EHR did not give the connector a backend services token.",
             "Register our JWKS URL for the backend client id at the EHR, allow the system/ "
             "scopes shown in the integration records, and check the signing algorithm."),
    ErrorDef("WB-EHR-REFUSED", 502, "The EHR refused the status",
             "The EHR refused the visit status the connector sent.",
             "The detail names the HTTP status and the EHR's issue code: a 400 / 422 usually "
             "means a status code the EHR does not know (writeback.statuses), a 403 a missing "
             "scope or security point, a 404 an appointment the EHR does not have."),
    ErrorDef("WB-TOKEN-REFUSED", 502, "The EHR refused our credentials",
             "The EHR refused the connector's credentials for write-back, also with a new token.",
             "Check the backend client or service account at the EHR (enabled, keys, scopes)."),
    ErrorDef("WB-EHR-UNAVAILABLE", 503, "The EHR kept failing",
             "The EHR did not take the visit status after every attempt.",
             "The EHR timed out, answered 5xx / 429, or kept answering version conflicts; "
             "check its status, then replay the failure."),
    ErrorDef("WB-NO-APPOINTMENT", 422, "No appointment to write to",
             "The visit has no appointment id the connector could write the status to.",
             "It was launched without an appointment, or its sealed id was purged "
             "(WRITEBACK_WINDOW after the visit's end); nothing can be written."),
    ErrorDef("WB-NOT-CONFIGURED", 422, "Write-back not configured",
             "Write-back for this endpoint is switched off or has no usable credentials.",
             "Switch writeback on for the endpoint (config API), validate it, then replay."),
    ErrorDef("WB-POISON", 422, "Unreadable write-back job",
             "A write-back job could not be read and was moved aside.",
             "A message on ehr-writeback-poison that is not a job: the detail says why. "
             "Replaying it is refused; nothing about a patient is in it."),
    ErrorDef("WB-FAILURE-NOT-FOUND", 404, "No such failure",
             "There is no write-back failure with this id.",
             "List the failures (GET /api/config/writeback/failures) and use an id from there."),
    ErrorDef("WB-REPLAY-REFUSED", 409, "Cannot replay",
             "This failure cannot be replayed.",
             "An unreadable job (WB-POISON) has nothing to replay; the detail says why."),
    # --- the service ---------------------------------------------------------------------------
    ErrorDef("SRV-STORAGE-UNAVAILABLE", 503, "Storage unavailable",
             "The service cannot reach its storage right now. Please try again in a minute.",
             "Check the storage account, its network rules and the app's managed identity."),
    ErrorDef("SRV-NOT-CONFIGURED", 503, "Not set up yet",
             "This service is not fully set up yet. Please try again later, or tell your IT "
             "team.",
             "A setting is missing or invalid: the log line 'not configured' names it. Fix the "
             "app settings (see docs/settings.md); the app reads them again on restart."),
    ErrorDef("SRV-EHR-UNAVAILABLE", 503, "The EHR is not answering",
             "The EHR is not answering right now. Please wait a minute, then open the visit "
             "again from the EHR.",
             "The EHR's discovery, sign-in, token or FHIR server did not answer within the "
             "request's budget (or kept answering 5xx / 429). The log line `dependency "
             "unavailable: ehr` names the host and the time; check the EHR's status and the "
             "network path from Azure."),
    ErrorDef("SRV-MICROSOFT-UNAVAILABLE", 503, "Microsoft is not answering",
             "Microsoft Teams or Microsoft sign-in is not answering right now. Please wait a "
             "minute, then open the visit again.",
             "Entra ID (token, keys) or Microsoft Graph (meetings) did not answer within the "
             "request's budget, or answered 502 / 503 / 504. The log line `dependency "
             "unavailable: microsoft` names the host and the time; see the Microsoft 365 "
             "service health page."),
    ErrorDef("SRV-SMS-UNAVAILABLE", 503, "Text messages unavailable",
             "Text messages cannot be sent right now. Please try again in a minute, or give "
             "the patient the link another way.",
             "Azure Communication Services did not answer within the budget. The log line "
             "`dependency unavailable: sms` says how long it waited; check the resource's "
             "health in the Azure portal."),
    ErrorDef("SRV-INTERNAL", 500, "Unexpected error",
             "Something went wrong on our side. Please try again; if it keeps happening, "
             "contact your IT team with the reference below.",
             "Look up the reference (the request id) in Application Insights."),
]  # fmt: skip

CATALOGUE: dict[str, ErrorDef] = {e.code: e for e in _ENTRIES}
assert len(CATALOGUE) == len(_ENTRIES), "an error code is defined twice"


@dataclass
class AppError(Exception):
    """A failure we can describe: rendered as problem JSON or an HTML page, never a traceback."""

    code: str
    detail: str | None = None
    errors: list[dict[str, Any]] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.code not in CATALOGUE:
            raise KeyError(f"unknown error code {self.code}")
        super().__init__(self.code)

    @property
    def definition(self) -> ErrorDef:
        return CATALOGUE[self.code]

    @property
    def status(self) -> int:
        return self.definition.status


def catalogue_markdown() -> str:
    rows = ["| code | status | what the person sees | what to fix |", "|---|---|---|---|"]
    for e in sorted(CATALOGUE.values(), key=lambda e: e.code):
        rows.append(f"| `{e.code}` | {e.status} | {e.sentence} | {e.fix} |")
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover - documentation helper
    print(catalogue_markdown())
