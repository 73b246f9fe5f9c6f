// Package pushbridge is the Pub/Sub part of the embedded Google Cloud: it
// starts Pub/Sub locally (the client library's pstest server, or Google's
// emulator when PUBSUB_EMULATOR_HOST or an address is given) and stands in
// for Eventarc, which neither of them has. For each route it pulls the
// subscription through the real v2 client (streaming pull) and POSTs every
// message to an HTTP endpoint as a binary-mode CloudEvent of type
// google.cloud.pubsub.topic.v1.messagePublished, with an optional
// Google-style OIDC token, exactly as a Cloud Function gen2 receives it
// (docs/google-cloud.md §5, §7).
//
// Delivery is at least once: a message is acknowledged only after a push
// answered 200, 201, 202 or 204. Any other answer, a timeout (the ack
// deadline is also the push timeout) or a connection error leads to
// redelivery after an exponential backoff between MinBackoff and
// MaxBackoff, done here because pstest implements no RetryPolicy. After
// MaxDeliveryAttempts the message goes to the route's dead-letter topic,
// with the source attributes Pub/Sub adds, and is acknowledged. Chaos
// options duplicate and reorder deliveries, deterministically, so handlers
// can be tested for idempotency and order independence.
//
// What survives a restart: nothing of Pub/Sub itself. pstest and the
// emulator keep topics, subscriptions and unacknowledged messages in memory
// only. After a restart Bridge.Start re-creates topics and subscriptions
// (EnsureTopic and EnsureSubscription tolerate ALREADY_EXISTS), but messages
// that were published and not yet acknowledged are gone. The pipeline must
// therefore never rely on a Pub/Sub message outliving a restart: durable
// state lives in the ledger, the workflow executions and Cloud Tasks, and
// whatever must happen after a restart is re-driven from them (sweeps,
// workflow resumption, revoke tasks).
package pushbridge
