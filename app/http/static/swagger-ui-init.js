// Boots the vendored Swagger UI (kept out of the HTML so no inline script is needed).
window.addEventListener("load", function () {
  var node = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: node.getAttribute("data-spec-url"),
    domNode: node,
    deepLinking: true,
    validatorUrl: null // the default would call validator.swagger.io
  });
});
