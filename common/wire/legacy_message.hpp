// The flat message shape of app versions up to v2.4.0 (vartalap v2.4.0,
// lib/models/socketMessage.dart, SocketMessage.toMap), read into the v2.1 shape:
//
//   {"msgId":"m1","to":"bob","from":"alice","type":"text","chatId":"c1","text":"hi",
//    "state":"new","module":null,"action":null,"chatType":"individual"}
// becomes
//   {"_v":2.1,"id":"m1","head":{"type":"individual","to":"bob","chatid":"c1",
//    "contentType":"text","action":"message","state":"new"},"body":{"text":"hi"}}
//
// which parse_client_message then reads like any v2.1 message (so `from` is the
// authenticated user's, and the flat keys every recipient reads are written again: a
// recipient on v2.4.0 reads those, one on v2.5 reads `_v`, head and body). The mapping is
// the original server's (chat-server v2.8.3, libs/event-args/message.js,
// MessageEvent.fromString, the `_v < 2` branch): id = msgId, head.type = chatType or else
// module, head.contentType = type, head.chatid = chatId (or chatid), head.action = action,
// head.state = state, body = {"text": text}. What the v2.5 app needs in a head (type,
// contentType and action: lib/models/remoteMessage.dart, Head.fromMap) defaults to
// "individual", "text" and "message". Other top-level members are kept; a `body` object,
// if the client sent one, is kept and gets `text` when it has none.
//
// A message is flat when it has no `head` and no `_v` of 2 or more (parse_client_message
// decides, after validating the text). Values are copied as they are, so parse_client_message
// refuses a wrong type or a missing `to` or id with its usual reasons.
//
// Thread-safety: a pure function. Errors: never throws; false for text that is not a JSON
// object (the caller has validated it already, so that does not happen in practice).
#pragma once

#include <string>
#include <string_view>

namespace vartalap {

// Writes the v2.1 text of the flat message `text` into `out`.
bool legacy_to_v2(std::string_view text, std::string& out);

} // namespace vartalap
