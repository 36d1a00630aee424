// Bento's published Node SDK, unchanged but for its base URL, against a running Sluice.
// Usage: node bento_sdk_check.mjs  (with SLUICE_URL, SLUICE_SITE_UUID,
// SLUICE_PUBLISHABLE_KEY and SLUICE_SECRET_KEY in the environment).
// Prints one JSON document: what each SDK call returned, for tests/test_api_sdk.py
// to check against what Sluice stored.
import { Analytics } from '@bentonow/bento-node-sdk';

const env = process.env;
const options = (secretKey) => ({
  authentication: { publishableKey: env.SLUICE_PUBLISHABLE_KEY, secretKey },
  siteUuid: env.SLUICE_SITE_UUID,
  clientOptions: { baseUrl: `${env.SLUICE_URL}/api/v1` },
});
const bento = new Analytics(options(env.SLUICE_SECRET_KEY));
const V1 = bento.V1;
const out = {};

// Events: they trigger flows.
out.track = await V1.track({
  email: 'ada@example.com',
  type: '$signup',
  details: { plan: 'pro' },
  fields: { first_name: 'Ada' },
});
out.tagSubscriber = await V1.tagSubscriber({ email: 'ada@example.com', tagName: 'vip' });
out.updateFields = await V1.updateFields({ email: 'ada@example.com', fields: { plan: 'team' } });
const purchase = {
  email: 'ada@example.com',
  purchaseDetails: { unique: { key: 'order-1' }, value: { currency: 'EUR', amount: 4200 } },
};
out.purchase1 = await V1.trackPurchase(purchase);
out.purchase2 = await V1.trackPurchase(purchase);
out.addSubscriber = await V1.addSubscriber({ email: 'bob@example.com', fields: { first_name: 'Bob' } });
out.removeSubscriber = await V1.removeSubscriber({ email: 'bob@example.com' });
out.importEvents = await V1.Batch.importEvents({
  events: [
    { type: 'visited', email: 'carol@example.com', details: { page: '/pricing' } },
    { type: 'visited', email: 'dan@example.com', date: new Date('2026-01-05T09:00:00Z') },
  ],
});

// Imports: no events, no flows.
out.importSubscribers = await V1.Batch.importSubscribers({
  subscribers: [
    { email: 'erin@example.com', first_name: 'Erin', tags: 'imported,beta' },
    { email: 'frank@example.com', company: 'Acme' },
  ],
});
out.upsertSubscriber = await V1.upsertSubscriber({
  email: 'gina@example.com',
  fields: { first_name: 'Gina' },
  tags: 'lead',
});

// Every command, one at a time as the SDK sends them.
const C = V1.Commands;
out.commands = {
  addTag: await C.addTag({ email: 'erin@example.com', tagName: 'customer' }),
  removeTag: await C.removeTag({ email: 'erin@example.com', tagName: 'beta' }),
  addField: await C.addField({ email: 'erin@example.com', field: { key: 'seats', value: 5 } }),
  removeField: await C.removeField({ email: 'erin@example.com', fieldName: 'first_name' }),
  unsubscribe: await C.unsubscribe({ email: 'frank@example.com' }),
  subscribe: await C.subscribe({ email: 'frank@example.com' }),
  changeEmail: await C.changeEmail({ oldEmail: 'gina@example.com', newEmail: 'gina@new.example' }),
};

// Look-ups.
out.byEmail = await V1.Subscribers.getSubscribers({ email: 'erin@example.com' });
out.byUuid = await V1.Subscribers.getSubscribers({ uuid: out.byEmail.attributes.uuid });
out.unknown = await V1.Subscribers.getSubscribers({ email: 'nobody@example.com' });
out.created = await V1.Subscribers.createSubscriber({ email: 'hank@example.com' });
out.createdTag = await V1.Tags.createTag({ name: 'partner' });
out.tags = await V1.Tags.getTags();
const lead = out.tags.find((tag) => tag.attributes.name === 'lead');
out.deletedTag = await V1.Tags.deleteTag(lead.id, { name: 'lead' });
out.tagsAfter = await V1.Tags.getTags();
out.createdField = await V1.Fields.createField({ key: 'favouriteColour' });
out.fields = await V1.Fields.getFields();
out.workflows = await V1.Workflows.getWorkflows();
out.siteStats = await V1.Stats.getSiteStats();
out.segmentStats = await V1.Stats.getSegmentStats('customers');
out.createdBroadcasts = await V1.Broadcasts.createBroadcast([
  {
    name: 'Launch',
    subject: 'We launched',
    content: '<p>Hi {{ visitor.email }}</p>',
    type: 'plain',
    from: { name: 'Shop', email: 'shop@example.com' },
    inclusive_tags: 'customer',
    batch_size_per_hour: 1000,
  },
]);
out.broadcasts = await V1.Broadcasts.getBroadcasts();
out.emails = await V1.Batch.sendTransactionalEmails({
  emails: [
    {
      to: 'ada@example.com',
      from: 'shop@example.com',
      subject: 'Receipt {{ order }}',
      html_body: '<p>Thanks, {{ name }}</p>',
      transactional: true,
      personalizations: { order: 'order-1', name: 'Ada' },
    },
  ],
});

// A wrong secret is refused.
try {
  await new Analytics(options('wrong-secret')).V1.track({ email: 'x@example.com', type: 'x' });
  out.wrongSecret = 'accepted';
} catch (error) {
  out.wrongSecret = error.constructor.name;
}

console.log(JSON.stringify(out));
