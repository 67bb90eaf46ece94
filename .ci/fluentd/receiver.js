// CI only: the Fluent organisation's Forward-protocol server, writing every record it receives
// as one JSON line to the file named by argv[2]. Listens on argv[4] (default 127.0.0.1):argv[3].
const fs = require("fs");
const { FluentServer } = require("@fluent-org/logger");

const out = fs.createWriteStream(process.argv[2], { flags: "a" });
const server = new FluentServer({ listenOptions: { host: process.argv[4] || "127.0.0.1", port: Number(process.argv[3]) } });
server.on("entry", (tag, time, record) => {
  out.write(JSON.stringify({ tag, record }) + "\n");
});
server.listen().then(() => console.log(`listening on ${server.port}`));
