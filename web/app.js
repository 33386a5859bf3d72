// Vartalap web client: PROTOCOL.md (v2.1 JSON) over a WebSocket authenticated by the
// cookies `user` and `accesskey` (a browser cannot set headers on a WebSocket), and the
// REST API (docs/REST_API.md) for login, groups, contacts, and sending or fetching messages
// while the socket is down. No framework, no build step, nothing loaded from elsewhere.
'use strict';

const $ = (selector) => document.querySelector(selector);
const MAX_KEPT = 200; // messages kept per chat in localStorage

const state = {
  config: { websocket: '', identity: 'development', firebaseProjectId: '' },
  me: null,          // { user, accesskey }
  ws: null,
  wsOpen: false,
  reconnectMs: 1000,
  pollTimer: null,
  chats: {},         // id → { id, type: 'individual'|'group', name, unread, last }
  messages: {},      // chat id → [{ id, from, text, ts, mine, state, system }]
  groups: {},        // group id → { groupId, name, members: [{username, role}] }
  open: null,        // the open chat id
  typingUntil: {},   // chat id → ms; who typed
  lastTypingSent: 0,
};

// ---- storage --------------------------------------------------------------------------

function storageKey() { return 'vartalap.' + state.me.user; }

function save() {
  const messages = {};
  for (const [id, list] of Object.entries(state.messages)) messages[id] = list.slice(-MAX_KEPT);
  localStorage.setItem(storageKey(), JSON.stringify({ chats: state.chats, messages }));
}

function restore() {
  try {
    const saved = JSON.parse(localStorage.getItem(storageKey()) || '{}');
    state.chats = saved.chats || {};
    state.messages = saved.messages || {};
  } catch (e) {
    state.chats = {};
    state.messages = {};
  }
}

// ---- REST -----------------------------------------------------------------------------

async function api(method, path, body) {
  const options = { method, credentials: 'same-origin', headers: {} };
  if (body !== undefined) {
    options.headers['Content-Type'] = 'application/json';
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (response.status === 401 && state.me) return logout(false, 'Your session ended; log in again.');
  if (!response.ok) throw new Error((data && data.error) || ('HTTP ' + response.status));
  return data;
}

// Cookies are per host, not per port: the ws-gateway on another port of this host gets them.
function setCookie(name, value, maxAge) {
  document.cookie = name + '=' + value + '; path=/; SameSite=Strict' +
    (maxAge !== undefined ? '; max-age=' + maxAge : '');
}

// ---- login ----------------------------------------------------------------------------

async function loadConfig() {
  try {
    const response = await fetch('/app/config.json');
    if (response.ok) Object.assign(state.config, await response.json());
  } catch (e) { /* defaults */ }
  const note = $('#identity-note');
  if (state.config.identity === 'firebase') {
    $('#token-row').hidden = false;
    note.textContent = 'This server verifies Firebase ID tokens (project ' +
      (state.config.firebaseProjectId || '?') + '). Firebase web sign-in needs the Firebase ' +
      'JS SDK, which this client does not load from a CDN: configure Firebase for this site ' +
      '(serve the SDK from web_dir), or sign in with your Firebase app and paste the ID token.';
  } else {
    note.textContent = 'Development login: any username, no password.';
  }
}

async function login(event) {
  event.preventDefault();
  $('#login-error').textContent = '';
  const username = $('#username').value.trim();
  const token = state.config.identity === 'firebase' ? $('#token').value.trim() : 'web-dev';
  if (!token) { $('#login-error').textContent = 'An ID token is needed.'; return; }
  try {
    const reply = await api('POST', '/login', {
      username, authToken: token, notificationToken: 'web', deviceId: 'web', messageVersion: 2.1,
    });
    if (!reply || !reply.accesskey) throw new Error('login refused');
    state.me = { user: reply.username || username, accesskey: reply.accesskey };
    localStorage.setItem('vartalap.session', JSON.stringify(state.me));
    start();
  } catch (e) {
    $('#login-error').textContent = 'Login failed: ' + e.message;
  }
}

async function logout(tellServer, why) {
  if (tellServer) { try { await api('POST', '/logout', {}); } catch (e) { /* gone anyway */ } }
  localStorage.removeItem('vartalap.session');
  setCookie('user', '', 0);
  setCookie('accesskey', '', 0);
  if (state.ws) { state.ws.onclose = null; state.ws.close(); }
  clearInterval(state.pollTimer);
  state.me = null;
  state.ws = null;
  state.wsOpen = false;
  $('#app').hidden = true;
  $('#login').hidden = false;
  $('#login-error').textContent = why || '';
  return null;
}

function start() {
  setCookie('user', state.me.user);
  setCookie('accesskey', state.me.accesskey);
  restore();
  $('#login').hidden = true;
  $('#app').hidden = false;
  $('#me').textContent = state.me.user;
  renderChats();
  refreshGroups();
  connect();
  clearInterval(state.pollTimer);
  state.pollTimer = setInterval(() => { if (!state.wsOpen) fetchPending(); }, 5000);
}

// ---- the WebSocket --------------------------------------------------------------------

function websocketUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const forced = new URLSearchParams(location.search).get('ws');
  let url = forced || state.config.websocket || '';
  if (url === '') url = scheme + '//' + location.host + '/wss';
  else if (url.startsWith(':')) url = scheme + '//' + location.hostname + url; // ":8080/wss"
  return url + (url.includes('?') ? '&' : '?') + 'ack=true';
}

function connect() {
  if (!state.me) return;
  const url = websocketUrl();
  const ws = new WebSocket(url);
  state.ws = ws;
  ws.onopen = () => {
    state.wsOpen = true;
    state.reconnectMs = 1000;
    setStatus(true);
    resendPending();
  };
  ws.onmessage = (event) => {
    if (event.data === 'pong') return;
    let data;
    try { data = JSON.parse(event.data); } catch (e) { return; }
    for (const message of Array.isArray(data) ? data : [data]) onMessage(message, 'ws');
  };
  ws.onclose = (event) => {
    if (state.ws !== ws) return;
    state.wsOpen = false;
    setStatus(false, event.code === 4001 ? 'access key revoked' :
      'cannot reach ' + url.split('?')[0] + ' (code ' + event.code + ')');
    if (event.code === 4001) return logout(false, 'Your access key was revoked; log in again.');
    fetchPending();
    setTimeout(connect, state.reconnectMs);
    state.reconnectMs = Math.min(state.reconnectMs * 2, 10000);
  };
}

function setStatus(online, why) {
  const status = $('#status');
  status.textContent = online ? 'online' : 'offline';
  status.className = 'status ' + (online ? 'online' : 'offline');
  status.title = online ? 'WebSocket connected' : (why || 'WebSocket closed');
}

// One client message: over the socket when it is up, else POST /send (answered per message).
async function transmit(message) {
  if (state.wsOpen) {
    state.ws.send(JSON.stringify(message));
    return;
  }
  try {
    const reply = await api('POST', '/send', message);
    const result = reply && reply.results && reply.results[0];
    if (result && result.status === 'accepted') markMine(message.id, 'sent');
    else if (result) markMine(message.id, 'failed', result.reason);
  } catch (e) {
    markMine(message.id, 'failed', e.message);
  }
}

function newId() {
  return Date.now().toString(36) + '-' + Math.random().toString(36).slice(2, 10);
}

function envelope(type, to, action, contentType, body, extra) {
  return Object.assign({
    _v: 2.1,
    id: newId(),
    head: { type, to, from: state.me.user, chatid: to, contentType, action,
            category: action === 'state' ? 'system' : 'message', ephemeral: action === 'typing' },
    meta: { createdAt: Date.now() },
    body,
  }, extra || {});
}

// A receipt for `ids` of `sender`'s messages: tells the sender, and acks them to the server.
function sendReceipt(sender, ids, receiptState) {
  if (!ids.length || sender === state.me.user) return;
  transmit(envelope('individual', sender, 'state', 'text', { ids, state: receiptState }));
}

// ---- what arrives ---------------------------------------------------------------------

function onMessage(m, via) {
  if (!m || typeof m !== 'object' || !m.head) return;
  const head = m.head;
  if (head.contentType === 'SERVER_ACK') return markMine(m.id, 'sent');
  if (head.contentType === 'error') {
    const error = (m.body && m.body.error) || 'refused';
    if (error === 'server busy, retry') return setTimeout(() => resendOne(m.id), 1000);
    return markMine(m.id, 'failed', error);
  }
  const group = head.type === 'group';
  const from = head.from;
  if (head.action === 'typing') {
    if (from === state.me.user) return;
    state.typingUntil[group ? head.to : from] = { who: from, until: Date.now() + 4000 };
    return renderTyping();
  }
  if (head.action === 'state') { // a receipt for messages of mine
    const body = m.body || {};
    for (const id of body.ids || []) markMine(id, body.state === 'read' ? 'read' : 'delivered');
    if (via === 'rest') ackOverRest(m);
    return;
  }
  if (group && (head.action === 'add' || head.action === 'remove')) {
    groupEvent(m);
    if (via === 'rest') ackOverRest(m);
    return;
  }
  const chatId = group ? head.to : from;
  const text = m.body && typeof m.body.text === 'string' ? m.body.text : '[' + head.contentType + ']';
  delete state.typingUntil[chatId];
  const isNew = addMessage(chatId, group ? 'group' : 'individual', {
    id: m.id, from, text, ts: (m.body && m.body.ts) ? m.body.ts * 1000 : Date.now(),
    mine: false,
  });
  const visible = state.open === chatId && document.visibilityState === 'visible';
  if (!visible && isNew) state.chats[chatId].unread = (state.chats[chatId].unread || 0) + 1;
  sendReceipt(from, [m.id], visible ? 'read' : 'delivered');
  if (visible) markRead(chatId, m.id);
  save();
  renderChats();
  if (state.open === chatId) renderMessages();
}

// A system message fetched over REST has no receipt to ack it: a CLIENT_ACK does.
function ackOverRest(m) {
  transmit({ _v: 2.1, id: m.id, head: { type: 'individual', to: 'server', from: state.me.user,
    contentType: 'CLIENT_ACK', action: 'ack', category: 'system' }, body: {} });
}

function groupEvent(m) {
  const groupId = m.head.to;
  const body = m.body || {};
  const actor = m.head.from;
  let text;
  if (m.head.action === 'add') {
    const names = (body.added || []).map((a) => a.username || a);
    text = actor + ' added ' + names.join(', ');
  } else {
    const names = body.removed || [];
    text = names.length === 1 && names[0] === actor ? actor + ' left'
      : actor + ' removed ' + names.join(', ');
  }
  addMessage(groupId, 'group', { id: m.id, from: actor, text, ts: Date.now(), system: true });
  save();
  refreshGroups();
}

// Adds a message to its chat (creating the chat); false when it was there already.
function addMessage(chatId, type, message) {
  if (!state.chats[chatId]) state.chats[chatId] = { id: chatId, type, name: chatId, unread: 0 };
  const list = state.messages[chatId] || (state.messages[chatId] = []);
  if (list.some((x) => x.id === message.id && x.from === message.from)) return false;
  message.state = message.state || (message.mine ? 'pending' : 'received');
  list.push(message);
  state.chats[chatId].last = message.system ? message.text
    : (message.mine ? 'You: ' : (type === 'group' ? message.from + ': ' : '')) + message.text;
  state.chats[chatId].lastTs = message.ts;
  if (state.open === chatId) renderMessages();
  return true;
}

const RANK = { pending: 0, failed: 0, sent: 1, delivered: 2, read: 3 };

function markMine(id, newState, why) {
  for (const [chatId, list] of Object.entries(state.messages)) {
    const message = list.find((x) => x.mine && x.id === id);
    if (!message) continue;
    if (newState !== 'failed' && RANK[newState] <= RANK[message.state]) return;
    if (newState === 'failed' && message.state !== 'pending') return;
    message.state = newState;
    message.error = why || '';
    save();
    if (state.open === chatId) renderMessages();
    return;
  }
}

function markRead(chatId, id) {
  const message = (state.messages[chatId] || []).find((x) => x.id === id && !x.mine);
  if (message) message.state = 'read';
}

// Messages that arrived while away, over REST: when the socket is down (on connect, the
// session sends them over the socket itself).
async function fetchPending() {
  if (!state.me || state.wsOpen) return;
  try {
    let cursor = null;
    for (let page = 0; page < 20; ++page) {
      const reply = await api('GET', '/messages?limit=100' + (cursor ? '&cursor=' + cursor : ''));
      if (!reply) return;
      for (const m of reply.messages || []) onMessage(m, 'rest');
      if (!reply.next) break;
      cursor = reply.next;
    }
  } catch (e) { /* the next poll tries again */ }
}

function resendPending() {
  for (const list of Object.values(state.messages))
    for (const message of list)
      if (message.mine && (message.state === 'pending' || message.state === 'failed'))
        resendOne(message.id);
}

function resendOne(id) {
  for (const [chatId, list] of Object.entries(state.messages)) {
    const message = list.find((x) => x.mine && x.id === id);
    if (!message) continue;
    const chat = state.chats[chatId];
    transmit(envelope(chat.type, chatId, 'message', 'text', { text: message.text, state: 'new' },
      { id: message.id }));
    return;
  }
}

// ---- what the user does ---------------------------------------------------------------

function openChat(chatId) {
  state.open = chatId;
  const chat = state.chats[chatId];
  chat.unread = 0;
  // Read receipts for what arrived while the chat was not open, one per sender.
  const bySender = {};
  for (const message of state.messages[chatId] || [])
    if (!message.mine && !message.system && message.state !== 'read') {
      (bySender[message.from] = bySender[message.from] || []).push(message.id);
      message.state = 'read';
    }
  for (const [sender, ids] of Object.entries(bySender)) sendReceipt(sender, ids, 'read');
  save();
  $('#chat-title').textContent = chat.type === 'group' ? (chat.name || chatId) : chatId;
  $('#compose').hidden = false;
  $('#group-panel').hidden = chat.type !== 'group';
  renderChats();
  renderMembers();
  renderMessages();
  renderTyping();
  $('#message-input').focus();
}

function send(event) {
  event.preventDefault();
  const input = $('#message-input');
  const text = input.value.trim();
  if (!text || !state.open) return;
  input.value = '';
  const chat = state.chats[state.open];
  const message = envelope(chat.type, chat.id, 'message', 'text', { text, state: 'new' });
  addMessage(chat.id, chat.type, { id: message.id, from: state.me.user, text, ts: Date.now(),
    mine: true });
  save();
  renderChats();
  state.lastTypingSent = 0; // the next keystroke says "typing" again at once
  transmit(message);
}

function typing() {
  if (!state.open || !state.wsOpen || Date.now() - state.lastTypingSent < 2000) return;
  state.lastTypingSent = Date.now();
  const chat = state.chats[state.open];
  const message = envelope(chat.type, chat.id, 'typing', 'text', { typing: true });
  state.ws.send(JSON.stringify(message)); // ephemeral: never stored, so never over REST
}

async function newChat(event) {
  event.preventDefault();
  const name = $('#new-chat-name').value.trim();
  $('#sidebar-error').textContent = '';
  if (!name) return;
  try {
    const known = await api('POST', '/contactbook/sync', { users: [name] });
    if (!known || !known[name]) throw new Error(name + ' has not registered');
    if (!state.chats[name]) state.chats[name] = { id: name, type: 'individual', name, unread: 0 };
    save();
    $('#new-chat-name').value = '';
    openChat(name);
  } catch (e) {
    $('#sidebar-error').textContent = e.message;
  }
}

const splitNames = (text) => text.split(',').map((s) => s.trim()).filter(Boolean);

async function newGroup(event) {
  event.preventDefault();
  $('#sidebar-error').textContent = '';
  try {
    const reply = await api('POST', '/groups', { name: $('#new-group-name').value.trim(),
      members: splitNames($('#new-group-members').value), profilePic: null });
    $('#new-group-name').value = '';
    $('#new-group-members').value = '';
    await refreshGroups();
    openChat(reply.groupId);
  } catch (e) {
    $('#sidebar-error').textContent = 'Group not created: ' + e.message;
  }
}

async function refreshGroups() {
  try {
    const list = await api('GET', '/groups');
    if (!Array.isArray(list)) return;
    state.groups = {};
    for (const group of list) {
      state.groups[group.groupId] = group;
      const chat = state.chats[group.groupId] ||
        (state.chats[group.groupId] = { id: group.groupId, type: 'group', unread: 0 });
      chat.type = 'group';
      chat.name = group.name || group.groupId;
    }
    for (const chat of Object.values(state.chats))
      if (chat.type === 'group' && !state.groups[chat.id]) chat.gone = true;
    save();
    renderChats();
    renderMembers();
    if (state.open && state.chats[state.open].type === 'group')
      $('#chat-title').textContent = state.chats[state.open].name;
  } catch (e) { /* shown on the next action */ }
}

async function changeMembers(method, groupId, body) {
  $('#sidebar-error').textContent = '';
  try {
    await api(method, '/groups/' + encodeURIComponent(groupId) + '/members', body);
  } catch (e) {
    $('#sidebar-error').textContent = 'Group change refused: ' + e.message;
  }
  await refreshGroups();
}

// ---- rendering (textContent only: nothing a user sent is parsed as HTML) --------------

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function renderChats() {
  const list = $('#chat-list');
  list.replaceChildren();
  const chats = Object.values(state.chats).sort((a, b) => (b.lastTs || 0) - (a.lastTs || 0));
  for (const chat of chats) {
    const item = element('li', chat.id === state.open ? 'active' : '');
    item.dataset.chat = chat.id;
    const name = element('span', 'name', chat.type === 'group' ? '# ' + (chat.name || chat.id) : chat.id);
    name.appendChild(element('span', 'unread', chat.unread ? String(chat.unread) : ''));
    item.appendChild(name);
    const typist = state.typingUntil[chat.id];
    if (typist && typist.until > Date.now())
      item.appendChild(element('span', 'typing-mark', (chat.type === 'group' ? typist.who + ' is ' : '') + 'typing…'));
    else item.appendChild(element('span', 'last', chat.gone ? '(you left)' : (chat.last || '')));
    item.addEventListener('click', () => openChat(chat.id));
    list.appendChild(item);
  }
}

const TICKS = { pending: '🕓', failed: '!', sent: '✓', delivered: '✓✓', read: '✓✓' };

function renderMessages() {
  const list = $('#messages');
  list.replaceChildren();
  const chat = state.chats[state.open];
  for (const message of state.messages[state.open] || []) {
    const item = element('li', 'msg' + (message.mine ? ' mine' : '') + (message.system ? ' system' : ''));
    item.dataset.id = message.id;
    if (chat.type === 'group' && !message.mine && !message.system)
      item.appendChild(element('span', 'sender', message.from));
    item.appendChild(element('span', 'text', message.text));
    const meta = element('span', 'meta', new Date(message.ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }));
    if (message.mine) {
      const ticks = element('span', 'ticks', TICKS[message.state] || '');
      ticks.dataset.state = message.state;
      if (message.error) ticks.title = message.error;
      meta.appendChild(ticks);
    }
    if (!message.system) item.appendChild(meta);
    list.appendChild(item);
  }
  list.scrollTop = list.scrollHeight;
}

function renderMembers() {
  const list = $('#members');
  list.replaceChildren();
  const group = state.open && state.groups[state.open];
  if (!group) return;
  const iAmAdmin = group.members.some((m) => m.username === state.me.user && m.role === 'admin');
  for (const member of group.members) {
    const item = element('li', '', member.username + (member.role === 'admin' ? ' (admin)' : ''));
    item.dataset.user = member.username;
    if (iAmAdmin || member.username === state.me.user) {
      const button = element('button', 'remove', member.username === state.me.user ? 'leave' : 'remove');
      button.type = 'button';
      button.dataset.user = member.username;
      button.addEventListener('click', () =>
        changeMembers('DELETE', group.groupId, { member: member.username }));
      item.appendChild(button);
    }
    list.appendChild(item);
  }
}

function renderTyping() {
  const now = Date.now();
  let changed = false;
  for (const [chatId, typist] of Object.entries(state.typingUntil))
    if (typist.until <= now) { delete state.typingUntil[chatId]; changed = true; }
  const typist = state.open && state.typingUntil[state.open];
  const chat = state.open && state.chats[state.open];
  const text = typist ? (chat && chat.type === 'group' ? typist.who + ' is typing…' : 'typing…') : '';
  if ($('#typing').textContent !== text) $('#typing').textContent = text;
  if (changed || Object.keys(state.typingUntil).length) renderChats();
}

// ---- start ----------------------------------------------------------------------------

document.addEventListener('DOMContentLoaded', async () => {
  $('#login-form').addEventListener('submit', login);
  $('#logout-button').addEventListener('click', () => logout(true));
  $('#compose').addEventListener('submit', send);
  $('#message-input').addEventListener('input', typing);
  $('#new-chat-form').addEventListener('submit', newChat);
  $('#new-group-form').addEventListener('submit', newGroup);
  $('#add-member-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const names = splitNames($('#add-member-name').value);
    $('#add-member-name').value = '';
    if (names.length && state.open) changeMembers('POST', state.open, { members: names });
  });
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && state.open) openChat(state.open);
  });
  setInterval(renderTyping, 500);
  await loadConfig();
  try {
    const saved = JSON.parse(localStorage.getItem('vartalap.session') || 'null');
    if (saved && saved.user && saved.accesskey) { state.me = saved; start(); }
  } catch (e) { /* log in again */ }
});
