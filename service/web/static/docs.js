"use strict";
// /docs: Swagger UI (served by this service from the flask-swagger-ui wheel) on this server's /openapi.json.
// "Try it out" calls this same server. A key typed on the transcription page (this tab's sessionStorage) is
// filled in for the Authorize dialog; nothing is sent anywhere else (no validator badge, no remote assets).

// Swagger UI fills every form field of "Try it out" with a sample drawn from its schema (an enum's first
// value, a range's bound) and sends them all: language=af, condition_on_previous_text=true, ... Here an
// optional field without a default starts empty, and empty fields are not sent: the request carries the
// file and what the person filled in, and the server's defaults do the rest.
function withEmptyOptionalFields(doc) {
  for (const path of Object.values(doc.paths || {})) {
    for (const operation of Object.values(path)) {
      const schema = operation?.requestBody?.content?.["multipart/form-data"]?.schema;
      const required = new Set(schema?.required || []);
      for (const [name, property] of Object.entries(schema?.properties || {})) {
        if (required.has(name) || "default" in property || "example" in property) continue;
        property.example = property.type === "array" ? [] : "";
      }
    }
  }
  return doc;
}

function withoutEmptyFields(request) {
  if (request.body instanceof FormData) {
    for (const [name, value] of [...request.body.entries()]) {
      if (value === "") request.body.delete(name);
    }
  }
  return request;
}

async function start() {
  const doc = await (await fetch("/openapi.json")).json();
  const ui = SwaggerUIBundle({
    spec: withEmptyOptionalFields(doc),
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    validatorUrl: null,
    requestInterceptor: withoutEmptyFields,
    defaultModelsExpandDepth: 0,
    onComplete: () => {
      const key = sessionStorage.getItem("whisper-service-api-key");
      if (key) ui.preauthorizeApiKey("bearer", key);
    },
  });
  window.ui = ui;
}

window.addEventListener("DOMContentLoaded", start);
