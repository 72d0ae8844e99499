// The CRM's own GraphQL explorer (docs/explorer.md): an editor for the operation, its
// variables and headers, a result pane, a schema browser built from introspection, and
// subscriptions over /graphql/ws. Everything it loads comes from the server that served
// it; it talks only to /graphql and /graphql/ws.
// Text from the server is only ever set as textContent, never parsed as HTML.
"use strict";

(function () {
  const ENDPOINT = "/graphql";
  const TOKEN_KEY = "crm-explorer-token";
  const $ = (id) => document.getElementById(id);

  const INTROSPECTION = `query ExplorerSchema {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types {
      kind name description
      fields(includeDeprecated: true) {
        name description isDeprecated deprecationReason
        args { name description defaultValue type { ...Ref } }
        type { ...Ref }
      }
      inputFields { name description defaultValue type { ...Ref } }
      enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
    }
  }
}
fragment Ref on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } }
}`;

  let schema = null;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k === "onclick") node.addEventListener("click", v);
      else node.setAttribute(k, v);
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return node;
  }

  function token() {
    return $("token").value.trim();
  }

  function setToken(value) {
    $("token").value = value;
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  }

  async function post(body, extraHeaders) {
    const headers = Object.assign({ "Content-Type": "application/json", Accept: "application/graphql-response+json, application/json" }, extraHeaders || {});
    const t = token();
    if (t) headers.Authorization = "Bearer " + t;
    const resp = await fetch(ENDPOINT, { method: "POST", headers, body: JSON.stringify(body), credentials: "omit" });
    let json = null;
    try {
      json = await resp.json();
    } catch (_) {
      json = { errors: [{ message: "the server answered " + resp.status + " without JSON" }] };
    }
    return { status: resp.status, json };
  }

  function firstError(json) {
    const e = json && json.errors && json.errors[0];
    if (!e) return null;
    const code = e.extensions && e.extensions.code;
    return (code ? code + ": " : "") + e.message;
  }

  // ---- the schema browser -------------------------------------------------

  function refName(ref) {
    if (!ref) return "";
    if (ref.kind === "NON_NULL") return refName(ref.ofType) + "!";
    if (ref.kind === "LIST") return "[" + refName(ref.ofType) + "]";
    return ref.name;
  }

  function namedType(ref) {
    while (ref && ref.ofType) ref = ref.ofType;
    return ref && ref.name;
  }

  function typeLink(ref) {
    const text = refName(ref);
    const name = namedType(ref);
    const link = el("a", { class: "type", href: "#" + name, "data-type": name }, text);
    link.addEventListener("click", (ev) => {
      ev.preventDefault();
      showType(name);
    });
    return link;
  }

  function description(text) {
    return text ? el("div", { class: "description" }, text) : null;
  }

  function showType(name) {
    const pane = $("type");
    pane.replaceChildren();
    const type = schema && schema.types.find((t) => t.name === name);
    if (!type) {
      pane.hidden = true;
      return;
    }
    pane.hidden = false;
    pane.append(el("h2", {}, type.name, el("span", { class: "kind" }, type.kind.toLowerCase().replace("_", " "))), description(type.description));
    for (const f of type.fields || []) {
      const args = (f.args || []).map((a, i) => [i ? ", " : "", a.name + ": ", typeLink(a.type)]).flat();
      const head = el("div", {}, el("span", { class: "name" + (f.isDeprecated ? " deprecated" : "") }, f.name), args.length ? "(" : "", ...args, args.length ? ")" : "", ": ", typeLink(f.type));
      pane.append(el("div", { class: "field" }, head, description(f.description), f.isDeprecated ? description("Deprecated: " + (f.deprecationReason || "")) : null));
    }
    for (const f of type.inputFields || []) {
      const head = el("div", {}, el("span", { class: "name" }, f.name), ": ", typeLink(f.type), f.defaultValue !== null && f.defaultValue !== undefined ? " = " + f.defaultValue : "");
      pane.append(el("div", { class: "field" }, head, description(f.description)));
    }
    for (const v of type.enumValues || []) {
      pane.append(el("div", { class: "field" }, el("span", { class: "name" + (v.isDeprecated ? " deprecated" : "") }, v.name), description(v.description)));
    }
    location.hash = name;
  }

  function listTypes() {
    const list = $("types");
    list.replaceChildren();
    if (!schema) return;
    const filter = $("filter").value.trim().toLowerCase();
    const roots = [schema.queryType, schema.mutationType, schema.subscriptionType].filter(Boolean).map((t) => t.name);
    const order = (t) => (roots.includes(t.name) ? 0 : t.kind === "OBJECT" ? 1 : t.kind === "INPUT_OBJECT" ? 2 : t.kind === "ENUM" ? 3 : 4);
    const types = schema.types
      .filter((t) => !t.name.startsWith("__"))
      .filter((t) => !filter || t.name.toLowerCase().includes(filter))
      .sort((a, b) => order(a) - order(b) || a.name.localeCompare(b.name));
    for (const t of types) {
      list.append(el("li", {}, typeLink({ kind: t.kind, name: t.name }), el("span", { class: "kind" }, t.kind.toLowerCase().replace("_", " "))));
    }
  }

  async function loadSchema() {
    const status = $("schema-status");
    status.className = "muted";
    status.textContent = "Loading the schema…";
    let answer;
    try {
      answer = await post({ query: INTROSPECTION, operationName: "ExplorerSchema" });
    } catch (e) {
      status.className = "error";
      status.textContent = "The server could not be reached: " + e;
      return;
    }
    const error = firstError(answer.json);
    if (error || !answer.json.data) {
      schema = null;
      listTypes();
      status.className = "error";
      status.textContent = (error || "no schema in the answer") + (token() ? "" : " (log in or paste a token first)");
      return;
    }
    schema = answer.json.data.__schema;
    status.textContent = schema.types.filter((t) => !t.name.startsWith("__")).length + " types";
    listTypes();
    let wanted = "";
    try {
      wanted = decodeURIComponent(location.hash.slice(1));
    } catch (_) {
      // A malformed link: start at the query type.
    }
    showType(schema.types.some((t) => t.name === wanted) ? wanted : schema.queryType.name);
  }

  // ---- running an operation -----------------------------------------------

  function parseJson(id, what) {
    const text = $(id).value.trim();
    if (!text) return {};
    try {
      const value = JSON.parse(text);
      if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error("not an object");
      return value;
    } catch (e) {
      throw new Error(what + " must be a JSON object: " + e.message);
    }
  }

  // ---- subscriptions over /graphql/ws (graphql-transport-ws) ------------------

  let socket = null;

  function isSubscription(query, op) {
    const code = query.replace(/#[^\n]*/g, "");
    if (op) return new RegExp("\\bsubscription\\s+" + op.replace(/[^A-Za-z0-9_]/g, "") + "\\b").test(code);
    return /^\s*subscription\b/.test(code);
  }

  function stop(note) {
    if (socket) {
      socket.close(1000);
      socket = null;
    }
    $("run").textContent = "▶ Run";
    if (note) $("status").textContent = note;
  }

  function subscribe(body) {
    const out = $("result");
    const events = [];
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + ENDPOINT + "/ws";
    socket = new WebSocket(url, "graphql-transport-ws");
    const ws = socket;
    $("run").textContent = "■ Stop";
    $("status").textContent = "connecting…";
    out.className = "";
    out.textContent = "";
    ws.onopen = () => ws.send(JSON.stringify({ type: "connection_init", payload: { authorization: "Bearer " + token() } }));
    ws.onmessage = (msg) => {
      let m;
      try {
        m = JSON.parse(msg.data);
      } catch (_) {
        return;
      }
      if (m.type === "connection_ack") {
        ws.send(JSON.stringify({ id: "1", type: "subscribe", payload: body }));
        $("status").textContent = "subscribed: waiting for events";
      } else if (m.type === "ping") {
        ws.send(JSON.stringify({ type: "pong" }));
      } else if (m.type === "next" || m.type === "error") {
        events.push(m.type === "next" ? m.payload : { errors: m.payload });
        out.textContent = events.map((e) => JSON.stringify(e, null, 2)).join("\n\n");
        $("status").textContent = events.length + (events.length === 1 ? " event" : " events");
        if (m.type === "error") stop();
      } else if (m.type === "complete") {
        stop("completed after " + events.length + " events");
      }
    };
    ws.onclose = (ev) => {
      if (socket === ws) stop("closed: " + ev.code + (ev.reason ? " " + ev.reason : ""));
    };
  }

  async function run() {
    const out = $("result");
    const status = $("status");
    if (socket) {
      stop("stopped");
      return;
    }
    let variables, headers;
    try {
      variables = parseJson("variables", "Variables");
      headers = parseJson("headers", "Headers");
    } catch (e) {
      out.className = "error";
      out.textContent = e.message;
      return;
    }
    const body = { query: $("query").value, variables };
    const op = $("operation-name").value.trim();
    if (op) body.operationName = op;
    if (isSubscription(body.query, op)) {
      subscribe(body);
      return;
    }
    status.textContent = "running…";
    const started = performance.now();
    try {
      const answer = await post(body, headers);
      out.className = "";
      out.textContent = JSON.stringify(answer.json, null, 2);
      status.textContent = "HTTP " + answer.status + " · " + Math.round(performance.now() - started) + " ms";
    } catch (e) {
      out.className = "error";
      out.textContent = "The request failed: " + e;
      status.textContent = "";
    }
  }

  async function login(ev) {
    ev.preventDefault();
    const who = $("who");
    const answer = await post({
      query: "mutation ExplorerLogin($email: String!, $password: String!) { login(email: $email, password: $password) { accessToken } }",
      variables: { email: $("email").value, password: $("password").value },
    }).catch((e) => ({ json: { errors: [{ message: String(e) }] } }));
    const error = firstError(answer.json);
    if (error) {
      who.textContent = error;
      return;
    }
    $("password").value = "";
    setToken(answer.json.data.login.accessToken);
    who.textContent = "logged in as " + $("email").value;
    loadSchema();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login").addEventListener("submit", login);
    $("token").value = sessionStorage.getItem(TOKEN_KEY) || "";
    $("token").addEventListener("change", () => {
      setToken(token());
      loadSchema();
    });
    $("reload").addEventListener("click", loadSchema);
    $("filter").addEventListener("input", listTypes);
    $("run").addEventListener("click", run);
    document.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
        ev.preventDefault();
        run();
      }
    });
    if (token()) loadSchema();
  });
})();
