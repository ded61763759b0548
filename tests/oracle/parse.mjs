// Test oracle for llmstream.sse: eventsource-parser, run as ONE long-lived process.
//
// Protocol: one JSON request per line on stdin, one JSON reply per line on stdout, in order.
//   request  {"id": n, "chunks": ["<base64>", ...]}   the byte stream of one connection, in chunks
//   reply    {"id": n, "records": [...]}                what the parser reported, in order:
//              ["event", type | null, data, blockId | null]   onEvent
//              ["id", lastEventId]                             onId (a block with an id field ended)
//              ["retry", ms]                                   onRetry
//            {"id": n, "error": "..."}                  the request could not be handled
//
// Bytes are decoded here with the WHATWG TextDecoder (UTF-8, invalid bytes to U+FFFD, streaming),
// which is what the spec's "UTF-8 decode" means; ignoreBOM keeps the BOM so the parser strips it.
// At the end of the stream the parser is reset WITHOUT {consume: true}: per HTML §9.2.6 "any
// pending data must be discarded", whereas consume would process an unterminated last line.
import { createInterface } from 'node:readline'
import { createParser } from 'eventsource-parser'

function parse(chunks) {
  const records = []
  const parser = createParser({
    onEvent: (event) => records.push(['event', event.event ?? null, event.data, event.id ?? null]),
    onId: (id) => records.push(['id', id]),
    onRetry: (ms) => records.push(['retry', ms]),
  })
  const decoder = new TextDecoder('utf-8', { ignoreBOM: true })
  for (const chunk of chunks) {
    parser.feed(decoder.decode(Buffer.from(chunk, 'base64'), { stream: true }))
  }
  parser.feed(decoder.decode())
  parser.reset()
  return records
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
lines.on('line', (line) => {
  let id = null
  let reply
  try {
    const request = JSON.parse(line)
    id = request.id
    reply = { id, records: parse(request.chunks) }
  } catch (error) {
    reply = { id, error: String(error && error.stack ? error.stack : error) }
  }
  process.stdout.write(JSON.stringify(reply) + '\n')
})
