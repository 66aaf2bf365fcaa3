/* DealBridge "My deals" tab: Teams single sign-on and the page's buttons.
 *
 * Not the Teams JS SDK: a minimal script of our own that speaks the same window.postMessage
 * protocol to the Teams host as @microsoft/teams-js 2.x does ({id, uuid, func, timestamp,
 * args, apiVersionTag} to the parent; the host answers {id, uuid, args}): "initialize", then
 * "authentication.getAuthToken" with [resources, claims, silent], answered [ok, tokenOrError].
 * The token goes with every request as "Authorization: Bearer"; DealBridge validates it.
 * Served by DealBridge itself (no CDN); no third-party code.
 */
(function () {
  "use strict";
  var root = document.getElementById("tab");
  var resource = (document.querySelector('meta[name="dealbridge-resource"]') || {}).content || "";
  var nextId = 0;
  var pending = {};
  var token = null;

  function uuid() {
    if (window.crypto && window.crypto.randomUUID) { return window.crypto.randomUUID(); }
    return String(Date.now()) + "-" + String(Math.random()).slice(2);
  }

  function callHost(func, args) {
    return new Promise(function (resolve, reject) {
      var id = nextId++;
      pending[id] = resolve;
      window.parent.postMessage(
        { id: id, uuid: uuid(), func: func, timestamp: Date.now(), args: args || [],
          apiVersionTag: "dealbridge_v1" }, "*");
      setTimeout(function () {
        if (pending[id]) { delete pending[id]; reject(new Error("Teams did not answer " + func)); }
      }, 15000);
    });
  }

  window.addEventListener("message", function (event) {
    if (event.source !== window.parent) { return; }
    var message = event.data || {};
    if (typeof message.id === "number" && pending[message.id] && !message.func) {
      var resolve = pending[message.id];
      delete pending[message.id];
      resolve(message.args || []);
    }
  });

  function show(text, kind) {
    root.innerHTML = "";
    var p = document.createElement("p");
    p.className = kind === "error" ? "banner error" : "status";
    p.id = "status";
    p.textContent = text;
    root.appendChild(p);
  }

  function signIn() {
    return callHost("authentication.getAuthToken", [[resource], [], false]).then(function (args) {
      if (!args[0]) { throw new Error("Teams could not sign you in (" + String(args[1]) + ")"); }
      token = args[1];
      return token;
    });
  }

  function request(method, url, body, retried) {
    var options = { method: method, headers: { Authorization: "Bearer " + token } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(url, options).then(function (answer) {
      if (answer.status === 401 && !retried) {
        return signIn().then(function () { return request(method, url, body, true); });
      }
      if (!answer.ok) {
        return answer.json().catch(function () { return {}; }).then(function (problem) {
          throw new Error(problem.detail || problem.title || ("HTTP " + answer.status));
        });
      }
      return answer;
    });
  }

  function load() {
    return request("GET", "/teams/tab/my-deals/view").then(function (answer) {
      return answer.text();
    }).then(function (html) {
      root.innerHTML = html;
      document.body.setAttribute("data-ready", "true");
    });
  }

  function failed(error) { show(error.message || String(error), "error"); }

  root.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-post], button[data-put]");
    if (!button) { return; }
    event.preventDefault();
    button.disabled = true;
    var body = button.getAttribute("data-json");
    var method = button.hasAttribute("data-put") ? "PUT" : "POST";
    var url = button.getAttribute(method === "PUT" ? "data-put" : "data-post");
    request(method, url, body ? JSON.parse(body) : {}).then(load).catch(failed);
  });

  root.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute("data-put")) { return; }
    event.preventDefault();
    var body = {};
    Array.prototype.forEach.call(form.elements, function (field) {
      if (field.name && field.value) { body[field.name] = field.value; }
    });
    if (!body.quiet_start !== !body.quiet_end) { delete body.quiet_start; delete body.quiet_end; }
    request("PUT", form.getAttribute("data-put"), body).then(load).catch(failed);
  });

  if (window.parent === window) {
    show("Open DealBridge in Microsoft Teams to see your deals here.");
    return;
  }
  callHost("initialize", ["2.0.0"]).then(signIn).then(load).catch(failed);
})();
