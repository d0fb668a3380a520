// An HTTP error with OpenAI's error body: {"error": {"message", "type", "param", "code"}}. Every failure a client
// can cause becomes one of these (never a crash, never a stack trace on the wire).
import { VlmkitError } from '../errors.js';

export class ApiError extends VlmkitError {
  readonly status: number;
  readonly type: string;
  readonly param: string | null;
  readonly apiCode: string | null;

  constructor(status: number, message: string, o: { type?: string; param?: string | null; code?: string | null } = {}) {
    super('E_SERVE', message);
    this.name = 'ApiError';
    this.status = status;
    this.type = o.type ?? (status >= 500 ? 'server_error' : 'invalid_request_error');
    this.param = o.param ?? null;
    this.apiCode = o.code ?? null;
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.apiCode } };
  }
}

/** A 400 naming the request field (`param`, as OpenAI spells it: "messages[0].content[1].image_url.url"). */
export function badRequest(param: string | null, message: string, code: string | null = 'invalid_value'): ApiError {
  return new ApiError(400, message, { param, code });
}

/**
 * Any error as an ApiError: a VlmkitError (the library's "bad input" errors: an undecodable image, a prompt over
 * the context) is the client's 400; anything else is a 500 whose message says no more than that.
 */
export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof VlmkitError) return new ApiError(400, e.message.split('\n')[0]!, { code: e.code.toLowerCase() });
  return new ApiError(500, 'the server failed on this request; it keeps serving (run it with VLMKIT_DEBUG=1 to see why)', { code: 'internal_error' });
}
