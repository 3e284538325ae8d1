import Foundation

/// The API as an OpenAPI 3.0 document, served at `GET /openapi.json`. A test holds its paths and
/// ``ImageRoutes/endpoints`` (the routes registered) to each other.
enum OpenAPI {
    static func document(modelName: String) -> String {
        let object = spec(modelName: modelName)
        let data =
            (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    static func ref(_ name: String) -> [String: Any] { ["$ref": "#/components/schemas/\(name)"] }

    static func json(_ schema: [String: Any], _ description: String) -> [String: Any] {
        ["description": description, "content": ["application/json": ["schema": schema]]]
    }

    static var errors: [String: Any] {
        [
            "400": json(ref("Error"), "Invalid request; `error.param` names the field"),
            "403": json(ref("Error"), "Host not allowed"),
            "413": json(ref("Error"), "Body larger than the limit"),
            "415": json(ref("Error"), "Content-Type is not application/json"),
            "429": json(ref("Error"), "Queue full; see Retry-After"),
            "503": json(ref("Error"), "Shutting down"),
        ]
    }

    static var idParameter: [String: Any] {
        [
            "name": "id", "in": "path", "required": true, "schema": ["type": "string"],
        ]
    }

    static func spec(modelName: String) -> [String: Any] {
        let imageRequest: [String: Any] = [
            "type": "object", "required": ["prompt"], "additionalProperties": false,
            "properties": [
                "prompt": ["type": "string", "maxLength": 4000],
                "model": ["type": "string", "enum": [modelName]],
                "n": ["type": "integer", "minimum": 1, "description": "images (jobs endpoint: 1)"],
                "size": ["type": "string", "pattern": "^[0-9]+x[0-9]+$", "example": "512x512"],
                "num_inference_steps": ["type": "integer", "minimum": 1, "maximum": 200],
                "seed": ["type": "integer", "minimum": 0, "maximum": 9_007_199_254_740_991],
                "slo_ms": [
                    "type": "number", "exclusiveMinimum": true, "minimum": 0, "maximum": 86_400_000,
                    "description": "relative deadline in milliseconds",
                ],
                "deadline": [
                    "type": "number", "description": "absolute deadline, unix milliseconds, within one day of now",
                ],
                "request_id": [
                    "type": "string", "minLength": 1, "maxLength": 128,
                    "description": "idempotency key (jobs endpoint only)",
                ],
                "user": ["type": "string", "maxLength": 256],
                "response_format": ["type": "string", "enum": ["b64_json"]],
                "output_format": ["type": "string", "enum": ["png"]],
                "quality": ["type": "string", "description": "ignored (named in `warnings`)"],
                "style": ["type": "string", "description": "ignored (named in `warnings`)"],
                "moderation": ["type": "string", "description": "ignored (named in `warnings`)"],
                "background": ["type": "string", "enum": ["auto", "opaque", "transparent"]],
                "output_compression": ["type": "integer", "minimum": 0, "maximum": 100],
                "partial_images": ["type": "integer", "minimum": 0, "maximum": 3],
                "stream": ["type": "boolean", "enum": [false]],
            ],
        ]
        let segment: [String: Any] = [
            "type": "object",
            "properties": [
                "degree": ["type": "integer"], "steps": ["type": "integer"],
                "devices": ["type": "array", "items": ["type": "integer"]], "start_s": ["type": "number"],
            ],
        ]
        let job: [String: Any] = [
            "type": "object",
            "properties": [
                "id": ["type": "string"], "object": ["type": "string", "enum": ["image.job"]],
                "status": ["type": "string", "enum": ["queued", "running", "succeeded", "failed", "cancelled"]],
                "request_id": ["type": "string", "nullable": true], "created": ["type": "integer"],
                "size": ["type": "string"], "seed": ["type": "integer"], "steps_done": ["type": "integer"],
                "steps_total": ["type": "integer"], "current_degree": ["type": "integer", "nullable": true],
                "deadline": ["type": "integer"], "estimated_finish": ["type": "integer", "nullable": true],
                "finished_at": ["type": "integer", "nullable": true], "error": ["type": "string", "nullable": true],
                "inference_time_s": ["type": "number", "nullable": true],
                "slo_met": ["type": "boolean", "nullable": true],
                "degree_history": ["type": "array", "items": ref("DegreeSegment")],
                "warnings": ["type": "array", "items": ["type": "string"]],
            ],
        ]
        let images: [String: Any] = [
            "type": "object",
            "properties": [
                "created": ["type": "integer"],
                "data": [
                    "type": "array",
                    "items": [
                        "type": "object",
                        "properties": [
                            "b64_json": ["type": "string"], "seed": ["type": "integer"],
                            "revised_prompt": ["type": "string", "nullable": true],
                        ],
                    ],
                ],
                "inference_time_s": ["type": "number"], "slo_met": ["type": "boolean"],
                "degree_history": ["type": "array", "items": ref("DegreeSegment")],
                "warnings": ["type": "array", "items": ["type": "string"]],
            ],
        ]
        let error: [String: Any] = [
            "type": "object",
            "properties": [
                "error": [
                    "type": "object",
                    "properties": [
                        "message": ["type": "string"], "type": ["type": "string"],
                        "param": ["type": "string", "nullable": true], "code": ["type": "string", "nullable": true],
                    ],
                ]
            ],
        ]
        func post(_ summary: String, _ ok: String, _ schema: [String: Any]) -> [String: Any] {
            [
                "summary": summary,
                "requestBody": ["required": true, "content": ["application/json": ["schema": ref("ImageRequest")]]],
                "responses": errors.merging([ok: json(schema, summary)]) { a, _ in a },
            ]
        }
        let jobResponses: [String: Any] = [
            "200": json(ref("Job"), "The job"), "404": json(ref("Error"), "No such job"),
        ]
        let paths: [String: Any] = [
            "/v1/images/generations": [
                "post": post("Generate images and wait for them", "200", ref("Images"))
            ],
            "/v1/images/jobs": [
                "post": post("Submit an asynchronous job (202; 200 for a known request_id)", "202", ref("Job")),
                "get": [
                    "summary": "The caller's jobs, newest first",
                    "parameters": [
                        [
                            "name": "limit", "in": "query", "required": false,
                            "schema": ["type": "integer", "minimum": 1, "maximum": 100, "default": 20],
                        ],
                        [
                            "name": "after", "in": "query", "required": false,
                            "description": "Continue after this job id", "schema": ["type": "string"],
                        ],
                    ],
                    "responses": [
                        "200": json(
                            [
                                "type": "object",
                                "properties": [
                                    "object": ["type": "string"],
                                    "data": ["type": "array", "items": ref("Job")],
                                    "first_id": ["type": "string", "nullable": true],
                                    "last_id": ["type": "string", "nullable": true],
                                    "has_more": ["type": "boolean"],
                                ],
                            ], "OpenAI-shaped list"),
                        "400": json(ref("Error"), "Bad limit or after"),
                    ],
                ],
            ],
            "/v1/images/jobs/{id}/events": [
                "parameters": [idParameter],
                "get": [
                    "summary": "Progress as Server-Sent Events: job, step, degree, finished (last)",
                    "responses": [
                        "200": [
                            "description": "An event stream",
                            "content": ["text/event-stream": ["schema": ["type": "string"]]],
                        ],
                        "404": json(ref("Error"), "No such job"),
                    ],
                ],
            ],
            "/v1/images/jobs/{id}": [
                "parameters": [idParameter],
                "get": ["summary": "A job's status", "responses": jobResponses],
                "delete": ["summary": "Cancel a job", "responses": jobResponses],
            ],
            "/v1/images/jobs/{id}/content": [
                "parameters": [idParameter],
                "get": [
                    "summary": "A finished job's PNG",
                    "responses": [
                        "200": [
                            "description": "The image",
                            "content": ["image/png": ["schema": ["type": "string", "format": "binary"]]],
                        ],
                        "404": json(ref("Error"), "No such job"),
                        "409": json(ref("Error"), "Not finished yet"),
                        "410": json(ref("Error"), "Failed or cancelled"),
                    ],
                ],
            ],
            "/v1/models": [
                "get": [
                    "summary": "The served model",
                    "responses": ["200": json(["type": "object"], "OpenAI-shaped model list naming '\(modelName)'")],
                ]
            ],
            "/healthz": [
                "get": [
                    "summary": "Health: ok, degraded (a device is being replaced) or draining",
                    "responses": ["200": json(["type": "object"], "Status, engine, devices, load")],
                ]
            ],
            "/metrics": [
                "get": [
                    "summary": "Prometheus metrics",
                    "responses": [
                        "200": [
                            "description": "Text exposition", "content": ["text/plain": ["schema": ["type": "string"]]],
                        ]
                    ],
                ]
            ],
            "/openapi.json": [
                "get": ["summary": "This document", "responses": ["200": json(["type": "object"], "OpenAPI 3.0")]]
            ],
        ]
        return [
            "openapi": "3.0.3",
            "info": [
                "title": "TetriServe image API", "version": "1",
                "description": "OpenAI-compatible image generation with deadline-aware scheduling",
            ],
            "paths": paths,
            "components": [
                "schemas": [
                    "ImageRequest": imageRequest, "Job": job, "Images": images, "Error": error,
                    "DegreeSegment": segment,
                ]
            ],
        ]
    }
}
