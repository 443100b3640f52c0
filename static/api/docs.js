// Starts Swagger UI for /api/v1/docs. A static file, not an inline script: the CSP allows only 'self'.
(function () {
  "use strict";
  var data = document.body.dataset;
  window.SwaggerUIBundle({
    url: data.openapiUrl,
    dom_id: "#swagger-ui",
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    // "Try it out" from a signed-in browser: session requests must carry the CSRF token.
    requestInterceptor: function (request) {
      if (data.csrfToken) {
        request.headers["X-CSRFToken"] = data.csrfToken;
      }
      return request;
    },
  });
})();
