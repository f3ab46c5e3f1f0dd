// The OpenAPI 3 document of the API, served at GET /api/v1/openapi.json. Edit it here, with the
// route in router.cc and its section in docs/api.md: tests/api/openapi_test.cc checks that it
// lists exactly the routes the router serves and that it is valid JSON.
#include "api/openapi_document.h"

namespace pw::api {

std::string_view openapi_document() {
    static constexpr std::string_view kDocument = R"openapi_json({
 "openapi": "3.0.3",
 "info": {
  "title": "portwarden local API",
  "version": "1",
  "description": "The local API of portwarden on core/listenAddress (127.0.0.1:817 and [::1]:817). Loopback only; root and members of core/apiGroups may call it. docs/api.md is the prose contract; this document lists every route and is checked against the router by tests/api/openapi_test.cc."
 },
 "servers": [
  {
   "url": "http://127.0.0.1:817/api/v1"
  }
 ],
 "paths": {
  "/status": {
   "get": {
    "summary": "The daemon's state: version, uptime, attribution, queues, counters, pause",
    "operationId": "getStatus",
    "responses": {
     "200": {
      "description": "the state",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Status"
        }
       }
      }
     },
     "403": {
      "description": "refused: Host, Origin or caller (the error says why)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "405": {
      "description": "method not allowed on this route (Allow lists the methods)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   }
  },
  "/events": {
   "get": {
    "summary": "The event stream: a WebSocket (Upgrade: websocket) with one text message per event, the --events file's JSON lines plus ended and setting events (docs/api.md#event-stream)",
    "operationId": "getEvents",
    "responses": {
     "101": {
      "description": "switching to the WebSocket; a client that falls behind is closed with 1008 and the reason 'too slow: N events not taken'"
     },
     "400": {
      "description": "a GET without Upgrade: websocket, or a malformed handshake",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "403": {
      "description": "refused: Host, Origin or caller (the error says why)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "503": {
      "description": "the stream has its 16 clients already",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   }
  },
  "/openapi.json": {
   "get": {
    "summary": "This document",
    "operationId": "getOpenApi",
    "responses": {
     "200": {
      "description": "the OpenAPI document",
      "content": {
       "application/json": {
        "schema": {
         "type": "object"
        }
       }
      }
     },
     "403": {
      "description": "refused: Host, Origin or caller (the error says why)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "405": {
      "description": "method not allowed on this route (Allow lists the methods)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   }
  },
  "/profiles": {
   "get": {
    "summary": "Every profile",
    "operationId": "listProfiles",
    "responses": {
     "200": {
      "description": "the profiles",
      "content": {
       "application/json": {
        "schema": {
         "type": "array",
         "items": {
          "$ref": "#/components/schemas/Profile"
         }
        }
       }
      }
     },
     "403": {
      "description": "refused: Host, Origin or caller (the error says why)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "405": {
      "description": "method not allowed on this route (Allow lists the methods)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   },
   "post": {
    "summary": "Create a profile",
    "operationId": "createProfile",
    "responses": {
     "201": {
      "description": "the profile as stored",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Profile"
        }
       }
      }
     },
     "400": {
      "description": "malformed request or body, or a value refused (the error says which)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "403": {
      "description": "refused: Host, Origin or caller (the error says why)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "405": {
      "description": "method not allowed on this route (Allow lists the methods)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "415": {
      "description": "the body is not application/json",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "503": {
      "description": "the daemon did not finish the change within 30 s (it may still happen)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "404": {
      "description": "no such profile, setting or prompt",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    },
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/NewProfile"
       }
      }
     }
    }
   }
  },
  "/profiles/{id}": {
   "get": {
    "summary": "One profile",
    "operationId": "getProfile",
    "responses": {
     "200": {
      "description": "the profile",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Profile"
        }
       }
      }
     },
     "403": {
      "description": "refused: Host, Origin or caller (the error says why)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "404": {
      "description": "no such profile, setting or prompt",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "405": {
      "description": "method not allowed on this route (Allow lists the methods)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    },
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "description": "profile ID (percent-encoded)",
      "schema": {
       "type": "string"
      }
     }
    ]
   },
   "patch": {
    "summary": "Change members of a profile",
    "operationId": "updateProfile",
    "responses": {
     "200": {
      "description": "the profile as stored",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Profile"
        }
       }
      }
     },
     "400": {
      "description": "malformed request or body, or a value refused (the error says which)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "403": {
      "description": "refused: Host, Origin or caller (the error says why)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "405": {
      "description": "method not allowed on this route (Allow lists the methods)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "415": {
      "description": "the body is not application/json",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "503": {
      "description": "the daemon did not finish the change within 30 s (it may still happen)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "404": {
      "description": "no such profile, setting or prompt",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    },
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/ProfileChange"
       }
      }
     }
    },
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "description": "profile ID (percent-encoded)",
      "schema": {
       "type": "string"
      }
     }
    ]
   },
   "delete": {
    "summary": "Delete a profile",
    "operationId": "deleteProfile",
    "responses": {
     "204": {
      "description": "deleted"
     },
     "403": {
      "description": "refused: Host, Origin or caller (the error says why)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "404": {
      "description": "no such profile, setting or prompt",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "405": {
      "description": "method not allowed on this route (Allow lists the methods)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "503": {
      "description": "the daemon did not finish the change within 30 s (it may still happen)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    },
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "description": "profile ID (percent-encoded)",
      "schema": {
       "type": "string"
      }
     }
    ]
   }
  },
  "/profiles/{id}/rules": {
   "post": {
    "summary": "Add a rule to a profile's list",
    "operationId": "addProfileRule",
    "responses": {
     "200": {
      "description": "the profile's lists after the change",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/RuleLists"
        }
       }
      }
     },
     "400": {
      "description": "malformed request or body, or a value refused (the error says which)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "403": {
      "description": "refused: Host, Origin or caller (the error says why)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "405": {
      "description": "method not allowed on this route (Allow lists the methods)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "415": {
      "description": "the body is not application/json",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "503": {
      "description": "the daemon did not finish the change within 30 s (it may still happen)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "404": {
      "description": "no such profile, setting or prompt",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    },
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/RuleEdit"
       }
      }
     }
    },
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "description": "profile ID (percent-encoded)",
      "schema": {
       "type": "string"
      }
     }
    ]
   },
   "delete": {
    "summary": "Remove a rule from a profile's list",
    "operationId": "removeProfileRule",
    "responses": {
     "200": {
      "description": "the profile's lists after the change",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/RuleLists"
        }
       }
      }
     },
     "400": {
      "description": "malformed request or body, or a value refused (the error says which)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "403": {
      "description": "refused: Host, Origin or caller (the error says why)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "405": {
      "description": "method not allowed on this route (Allow lists the methods)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "415": {
      "description": "the body is not application/json",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "503": {
      "description": "the daemon did not finish the change within 30 s (it may still happen)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "404": {
      "description": "no such profile, setting or prompt",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    },
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/RuleEdit"
       }
      }
     }
    },
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "description": "profile ID (percent-encoded)",
      "schema": {
       "type": "string"
      }
     }
    ]
   }
  },
  "/profiles/{id}/settings": {
   "get": {
    "summary": "A profile's per-application settings",
    "operationId": "listProfileSettings",
    "responses": {
     "200": {
      "description": "the settings",
      "content": {
       "application/json": {
        "schema": {
         "type": "array",
         "items": {
          "$ref": "#/components/schemas/Setting"
         }
        }
       }
      }
     },
     "403": {
      "description": "refused: Host, Origin or caller (the error says why)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "404": {
      "description": "no such profile, setting or prompt",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "405": {
      "description": "method not allowed on this route (Allow lists the methods)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    },
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "description": "profile ID (percent-encoded)",
      "schema": {
       "type": "string"
      }
     }
    ]
   }
  },
  "/profiles/{id}/settings/{key}": {
   "get": {
    "summary": "One per-application setting of a profile",
    "operationId": "getProfileSetting",
    "responses": {
     "200": {
      "description": "the setting",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Setting"
        }
       }
      }
     },
     "403": {
      "description": "refused: Host, Origin or caller (the error says why)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "404": {
      "description": "no such profile, setting or prompt",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "405": {
      "description": "method not allowed on this route (Allow lists the methods)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    },
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "description": "profile ID (percent-encoded)",
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "key",
      "in": "path",
      "required": true,
      "description": "setting key, e.g. filter/defaultAction (encoded as filter%2FdefaultAction, or literally as the rest of the path)",
      "schema": {
       "type": "string"
      }
     }
    ]
   },
   "put": {
    "summary": "Set (or with null remove) a per-application setting of a profile",
    "operationId": "setProfileSetting",
    "responses": {
     "200": {
      "description": "the setting as it is now",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Setting"
        }
       }
      }
     },
     "400": {
      "description": "malformed request or body, or a value refused (the error says which)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "403": {
      "description": "refused: Host, Origin or caller (the error says why)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "405": {
      "description": "method not allowed on this route (Allow lists the methods)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "415": {
      "description": "the body is not application/json",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "503": {
      "description": "the daemon did not finish the change within 30 s (it may still happen)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "404": {
      "description": "no such profile, setting or prompt",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    },
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/SettingValue"
       }
      }
     }
    },
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "description": "profile ID (percent-encoded)",
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "key",
      "in": "path",
      "required": true,
      "description": "setting key, e.g. filter/defaultAction (encoded as filter%2FdefaultAction, or literally as the rest of the path)",
      "schema": {
       "type": "string"
      }
     }
    ]
   }
  },
  "/rules": {
   "post": {
    "summary": "Add a global rule",
    "operationId": "addGlobalRule",
    "responses": {
     "200": {
      "description": "the global lists after the change",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/RuleLists"
        }
       }
      }
     },
     "400": {
      "description": "malformed request or body, or a value refused (the error says which)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "403": {
      "description": "refused: Host, Origin or caller (the error says why)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "405": {
      "description": "method not allowed on this route (Allow lists the methods)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "415": {
      "description": "the body is not application/json",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "503": {
      "description": "the daemon did not finish the change within 30 s (it may still happen)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    },
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/RuleEdit"
       }
      }
     }
    }
   },
   "delete": {
    "summary": "Remove a global rule",
    "operationId": "removeGlobalRule",
    "responses": {
     "200": {
      "description": "the global lists after the change",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/RuleLists"
        }
       }
      }
     },
     "400": {
      "description": "malformed request or body, or a value refused (the error says which)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "403": {
      "description": "refused: Host, Origin or caller (the error says why)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "405": {
      "description": "method not allowed on this route (Allow lists the methods)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "415": {
      "description": "the body is not application/json",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "503": {
      "description": "the daemon did not finish the change within 30 s (it may still happen)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "404": {
      "description": "no such profile, setting or prompt",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    },
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/RuleEdit"
       }
      }
     }
    }
   }
  },
  "/settings": {
   "get": {
    "summary": "Every setting, with the layer its value comes from",
    "operationId": "listSettings",
    "responses": {
     "200": {
      "description": "the settings",
      "content": {
       "application/json": {
        "schema": {
         "type": "array",
         "items": {
          "$ref": "#/components/schemas/Setting"
         }
        }
       }
      }
     },
     "403": {
      "description": "refused: Host, Origin or caller (the error says why)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "405": {
      "description": "method not allowed on this route (Allow lists the methods)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   }
  },
  "/settings/{key}": {
   "get": {
    "summary": "One setting",
    "operationId": "getSetting",
    "responses": {
     "200": {
      "description": "the setting",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Setting"
        }
       }
      }
     },
     "403": {
      "description": "refused: Host, Origin or caller (the error says why)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "404": {
      "description": "no such profile, setting or prompt",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "405": {
      "description": "method not allowed on this route (Allow lists the methods)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    },
    "parameters": [
     {
      "name": "key",
      "in": "path",
      "required": true,
      "description": "setting key, e.g. filter/defaultAction (encoded as filter%2FdefaultAction, or literally as the rest of the path)",
      "schema": {
       "type": "string"
      }
     }
    ]
   },
   "put": {
    "summary": "Set (or with null remove) a global setting",
    "operationId": "setSetting",
    "responses": {
     "200": {
      "description": "the setting as it is now",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Setting"
        }
       }
      }
     },
     "400": {
      "description": "malformed request or body, or a value refused (the error says which)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "403": {
      "description": "refused: Host, Origin or caller (the error says why)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "405": {
      "description": "method not allowed on this route (Allow lists the methods)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "415": {
      "description": "the body is not application/json",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "503": {
      "description": "the daemon did not finish the change within 30 s (it may still happen)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "404": {
      "description": "no such profile, setting or prompt",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    },
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/SettingValue"
       }
      }
     }
    },
    "parameters": [
     {
      "name": "key",
      "in": "path",
      "required": true,
      "description": "setting key, e.g. filter/defaultAction (encoded as filter%2FdefaultAction, or literally as the rest of the path)",
      "schema": {
       "type": "string"
      }
     }
    ]
   }
  },
  "/prompts": {
   "get": {
    "summary": "The open prompts",
    "operationId": "listPrompts",
    "responses": {
     "200": {
      "description": "the prompts",
      "content": {
       "application/json": {
        "schema": {
         "type": "array",
         "items": {
          "$ref": "#/components/schemas/Prompt"
         }
        }
       }
      }
     },
     "403": {
      "description": "refused: Host, Origin or caller (the error says why)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "405": {
      "description": "method not allowed on this route (Allow lists the methods)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   }
  },
  "/prompts/{id}/answer": {
   "post": {
    "summary": "Answer a prompt",
    "operationId": "answerPrompt",
    "responses": {
     "200": {
      "description": "the answer as applied",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/PromptAnswered"
        }
       }
      }
     },
     "400": {
      "description": "malformed request or body, or a value refused (the error says which)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "403": {
      "description": "refused: Host, Origin or caller (the error says why)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "405": {
      "description": "method not allowed on this route (Allow lists the methods)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "415": {
      "description": "the body is not application/json",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "503": {
      "description": "the daemon did not finish the change within 30 s (it may still happen)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "404": {
      "description": "no such profile, setting or prompt",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    },
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/PromptAnswer"
       }
      }
     }
    },
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "description": "prompt number",
      "schema": {
       "type": "integer",
       "minimum": 0
      }
     }
    ]
   }
  },
  "/pause": {
   "post": {
    "summary": "Pause filtering: nothing is blocked or asked until the pause ends",
    "operationId": "pause",
    "responses": {
     "200": {
      "description": "the pause",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Pause"
        }
       }
      }
     },
     "400": {
      "description": "malformed request or body, or a value refused (the error says which)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "403": {
      "description": "refused: Host, Origin or caller (the error says why)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "405": {
      "description": "method not allowed on this route (Allow lists the methods)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "415": {
      "description": "the body is not application/json",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "503": {
      "description": "the daemon did not finish the change within 30 s (it may still happen)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    },
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/PauseRequest"
       }
      }
     }
    }
   }
  },
  "/resume": {
   "post": {
    "summary": "End a pause",
    "operationId": "resume",
    "responses": {
     "200": {
      "description": "the pause, ended",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Pause"
        }
       }
      }
     },
     "403": {
      "description": "refused: Host, Origin or caller (the error says why)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "405": {
      "description": "method not allowed on this route (Allow lists the methods)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   }
  }
 },
 "components": {
  "schemas": {
   "Error": {
    "type": "object",
    "required": [
     "error"
    ],
    "properties": {
     "error": {
      "type": "string",
      "description": "why, in words a person can act on"
     }
    }
   },
   "Status": {
    "type": "object",
    "required": [
     "version",
     "uptimeSeconds",
     "paused"
    ],
    "properties": {
     "version": {
      "type": "string"
     },
     "uptimeSeconds": {
      "type": "integer"
     },
     "paused": {
      "type": "boolean"
     },
     "pausedUntil": {
      "type": "string",
      "format": "date-time",
      "nullable": true
     },
     "attribution": {
      "type": "object"
     },
     "dns": {
      "type": "object"
     },
     "queues": {
      "type": "array",
      "items": {
       "type": "integer"
      }
     },
     "queueStates": {
      "type": "array",
      "items": {
       "type": "object"
      }
     },
     "ipv4Rules": {
      "type": "boolean"
     },
     "ipv6Rules": {
      "type": "boolean"
     },
     "rules": {
      "type": "object"
     },
     "profiles": {
      "type": "integer"
     },
     "openPrompts": {
      "type": "integer"
     },
     "counters": {
      "type": "object"
     },
     "events": {
      "type": "object",
      "nullable": true
     }
    },
    "additionalProperties": true
   },
   "Fingerprint": {
    "type": "object",
    "required": [
     "type",
     "operation",
     "value"
    ],
    "properties": {
     "type": {
      "type": "string",
      "enum": [
       "path",
       "cmdline",
       "env",
       "tag"
      ]
     },
     "operation": {
      "type": "string",
      "enum": [
       "equals",
       "prefix",
       "regex"
      ]
     },
     "value": {
      "type": "string"
     },
     "key": {
      "type": "string",
      "description": "env and tag fingerprints: the variable or tag name"
     },
     "ancestor": {
      "type": "boolean",
      "description": "match a parent process instead of the process itself"
     },
     "container": {
      "type": "string",
      "description": "only processes in this container (ID or name)"
     }
    },
    "additionalProperties": true
   },
   "Profile": {
    "type": "object",
    "required": [
     "id",
     "name",
     "source",
     "fingerprints",
     "settings"
    ],
    "properties": {
     "id": {
      "type": "string"
     },
     "name": {
      "type": "string"
     },
     "source": {
      "type": "string",
      "enum": [
       "auto",
       "user",
       "special"
      ]
     },
     "fingerprints": {
      "type": "array",
      "items": {
       "$ref": "#/components/schemas/Fingerprint"
      }
     },
     "settings": {
      "type": "object"
     },
     "temporaryRules": {
      "type": "array",
      "items": {
       "type": "object"
      }
     },
     "ruleStatistics": {
      "type": "array",
      "items": {
       "type": "object"
      }
     },
     "created": {
      "type": "string"
     },
     "firstSeen": {
      "type": "string"
     },
     "lastSeen": {
      "type": "string"
     }
    },
    "additionalProperties": true
   },
   "NewProfile": {
    "type": "object",
    "required": [
     "name",
     "fingerprints"
    ],
    "properties": {
     "id": {
      "type": "string"
     },
     "name": {
      "type": "string"
     },
     "fingerprints": {
      "type": "array",
      "items": {
       "$ref": "#/components/schemas/Fingerprint"
      }
     },
     "settings": {
      "type": "object"
     }
    }
   },
   "ProfileChange": {
    "type": "object",
    "properties": {
     "name": {
      "type": "string"
     },
     "fingerprints": {
      "type": "array",
      "items": {
       "$ref": "#/components/schemas/Fingerprint"
      }
     },
     "settings": {
      "type": "object"
     }
    }
   },
   "RuleEdit": {
    "type": "object",
    "required": [
     "list",
     "rule"
    ],
    "properties": {
     "list": {
      "type": "string",
      "enum": [
       "endpoints",
       "serviceEndpoints"
      ]
     },
     "rule": {
      "type": "string",
      "example": "- .example.com"
     },
     "position": {
      "type": "integer",
      "minimum": 0,
      "description": "adding only; the end when left out"
     }
    }
   },
   "RuleLists": {
    "type": "object",
    "properties": {
     "endpoints": {
      "type": "array",
      "items": {
       "type": "string"
      }
     },
     "serviceEndpoints": {
      "type": "array",
      "items": {
       "type": "string"
      }
     }
    },
    "additionalProperties": true
   },
   "Setting": {
    "type": "object",
    "required": [
     "key",
     "value",
     "layer",
     "scope"
    ],
    "properties": {
     "key": {
      "type": "string"
     },
     "value": {},
     "layer": {
      "type": "string",
      "enum": [
       "default",
       "store",
       "configFile",
       "app"
      ]
     },
     "scope": {
      "type": "string",
      "enum": [
       "global",
       "app"
      ]
     }
    }
   },
   "SettingValue": {
    "type": "object",
    "required": [
     "value"
    ],
    "properties": {
     "value": {
      "description": "the new value; null removes the key from its layer"
     }
    },
    "additionalProperties": false
   },
   "Prompt": {
    "type": "object",
    "properties": {
     "id": {
      "type": "integer"
     },
     "profile": {
      "type": "object"
     },
     "executable": {
      "type": "string"
     },
     "domain": {
      "type": "string",
      "nullable": true
     },
     "remote": {
      "type": "object"
     },
     "protocol": {
      "type": "string"
     },
     "direction": {
      "type": "string"
     },
     "connections": {
      "type": "integer"
     },
     "opened": {
      "type": "string"
     }
    },
    "additionalProperties": true
   },
   "PromptAnswer": {
    "type": "object",
    "required": [
     "verdict"
    ],
    "properties": {
     "verdict": {
      "type": "string",
      "enum": [
       "permit",
       "block"
      ]
     },
     "target": {
      "type": "string",
      "enum": [
       "domain",
       "zone",
       "ip",
       "port"
      ]
     },
     "for": {
      "type": "string",
      "description": "once, restart, exit, always, or a duration such as 15m, 2h, 1d"
     }
    },
    "additionalProperties": false
   },
   "PromptAnswered": {
    "type": "object",
    "properties": {
     "id": {
      "type": "integer"
     },
     "verdict": {
      "type": "string"
     },
     "for": {
      "type": "string"
     },
     "connections": {
      "type": "integer"
     }
    }
   },
   "PauseRequest": {
    "type": "object",
    "properties": {
     "duration": {
      "type": "string",
      "example": "15m",
      "description": "90s, 15m, 2h ... at most 24h; 5m when left out"
     }
    },
    "additionalProperties": false
   },
   "Pause": {
    "type": "object",
    "required": [
     "paused",
     "until"
    ],
    "properties": {
     "paused": {
      "type": "boolean"
     },
     "until": {
      "type": "string",
      "format": "date-time",
      "nullable": true
     }
    }
   }
  }
 }
}
)openapi_json";
    return kDocument;
}

} // namespace pw::api
