// Preloaded into PouchDB Server. Node closes idle keep-alive connections after 5 s, and a
// client that reuses one at that instant gets a reset instead of an answer; Apache CouchDB
// keeps them far longer. The dev server does the same, so tests see CouchDB's behaviour.
const http = require('http');
const listen = http.Server.prototype.listen;
http.Server.prototype.listen = function (...args) {
  this.keepAliveTimeout = 300000;
  this.headersTimeout = 301000;
  return listen.apply(this, args);
};
