// A stand-in for Bitwig's controller host, for the tests: loads Redrum.control.js, emulates the
// parts of the API it uses (OSC module over real UDP, document settings, clip slots), runs one
// command and prints {"inserted": [...], "notifications": [...]} as the last line of stdout.
//
//   node host_stub.js Redrum.control.js SERVER_PORT layer|transform|interpolate|transcribe FILE [FILE]
// (the project's tempo: REDRUM_TEST_BPM, default 120)
"use strict";
const dgram = require("dgram");
const fs = require("fs");
const vm = require("vm");

const [scriptPath, serverPort, command, ...files] = process.argv.slice(2);
const inserted = [];
const notifications = [];

// -- OSC over UDP (strings, int32, float32, float64, booleans) -------------------------

function pad4(n) { return (n + 3) & ~3; }

function oscString(s) {
    const raw = Buffer.from(s, "utf8");
    const out = Buffer.alloc(pad4(raw.length + 1));
    raw.copy(out);
    return out;
}

function encode(address, args) {
    let tags = ",";
    const parts = [];
    for (const a of args) {
        if (typeof a === "string") {
            tags += "s"; parts.push(oscString(a));
        } else if (Number.isInteger(a)) {
            tags += "i"; const b = Buffer.alloc(4); b.writeInt32BE(a); parts.push(b);
        } else {
            tags += "f"; const b = Buffer.alloc(4); b.writeFloatBE(a); parts.push(b);
        }
    }
    return Buffer.concat([oscString(address), oscString(tags), ...parts]);
}

function readString(buf, pos) {
    const end = buf.indexOf(0, pos);
    return [buf.toString("utf8", pos, end), pad4(end + 1)];
}

function decode(buf) {
    let [address, pos] = readString(buf, 0);
    let tags;
    [tags, pos] = readString(buf, pos);
    const args = [];
    for (const t of tags.slice(1)) {
        if (t === "s") { let s; [s, pos] = readString(buf, pos); args.push(s); }
        else if (t === "i") { args.push(buf.readInt32BE(pos)); pos += 4; }
        else if (t === "f") { args.push(buf.readFloatBE(pos)); pos += 4; }
        else if (t === "d") { args.push(buf.readDoubleBE(pos)); pos += 8; }
        else if (t === "T") { args.push(true); }
        else if (t === "F") { args.push(false); }
    }
    return { address, args };
}

function message(args) {
    return {
        getString: (i) => String(args[i]),
        getFloat: (i) => Number(args[i]),
        getInt: (i) => Math.trunc(Number(args[i])),
        getArguments: () => args,
    };
}

// -- the host API ---------------------------------------------------------------

const sockets = [];
const signals = {};
const settings = {};
const slotFilled = [];

function setting(initial) {
    let value = initial;
    return { get: () => value, getRaw: () => value, set: (v) => { value = v; }, markInterested: () => {} };
}

const host = {
    defineController() {},
    setShouldFailOnDeprecatedUse() {},
    showPopupNotification(text) { notifications.push(text); check(); },
    getDocumentState() {
        return {
            getStringSetting(label, category, len, init) { return (settings[label] = setting(init)); },
            getNumberSetting(label, category, min, max, step, unit, init) { return (settings[label] = setting(init)); },
            getSignalSetting(label) {
                return { addSignalObserver(fn) { signals[label] = fn; } };
            },
        };
    },
    createTransport() {
        const tempo = Number(process.env.REDRUM_TEST_BPM || 120);
        return { tempo: () => ({ value: () => ({ markInterested() {}, getRaw: () => tempo }) }) };
    },
    createCursorTrack(id, name, sends, scenes) {
        return {
            clipLauncherSlotBank() {
                return {
                    getItemAt(i) {
                        return {
                            hasContent: () => ({ markInterested() {}, get: () => !!slotFilled[i] }),
                            replaceInsertionPoint: () => ({
                                insertFile(path) {
                                    if (!fs.existsSync(path)) throw new Error("insertFile: no such file " + path);
                                    slotFilled[i] = true;
                                    inserted.push(path);
                                },
                            }),
                        };
                    },
                };
            },
        };
    },
    getOscModule() {
        return {
            createAddressSpace() {
                const methods = {};
                return {
                    registerMethod(address, tags, desc, fn) { methods[address] = fn; },
                    setShouldLogMessages() {},
                    dispatch(msg) { if (methods[msg.address]) methods[msg.address](null, message(msg.args)); },
                };
            },
            createUdpServer(port, space) {
                const sock = dgram.createSocket("udp4");
                sock.on("message", (data) => space.dispatch(decode(data)));
                sock.bind(port, "127.0.0.1");
                sockets.push(sock);
            },
            connectToUdpServer(hostName, port, space) {
                const sock = dgram.createSocket("udp4");
                if (space) sock.on("message", (data) => space.dispatch(decode(data)));   // answers to the sender
                sockets.push(sock);
                return {
                    sendMessage(address, ...args) { sock.send(encode(address, args), port, hostName); },
                };
            },
        };
    },
};

// -- run the script ---------------------------------------------------------------

function finish(code) {
    console.log(JSON.stringify({ inserted, notifications }));
    for (const s of sockets) s.close();
    process.exit(code);
}

let started = false;
function check() {
    const last = notifications[notifications.length - 1] || "";
    if (!started && last.includes("connected")) {
        started = true;
        if (command === "layer" || command === "transcribe") {
            settings["Target file"].set(files[0]);
            signals[command === "layer" ? "Layer" : "Transcribe"]();
        } else {
            settings["Source file"].set(files[0]);
            settings["Target file"].set(files[1]);
            signals[command === "transform" ? "Redrum" : "Interpolate"]();
        }
    } else if (started && (last.includes("inserted") || last.includes("error"))) {
        setImmediate(() => finish(0));
    }
}

const probe = dgram.createSocket("udp4");
probe.bind(0, "127.0.0.1", () => {
    const replyPort = probe.address().port;
    probe.close();
    const source = fs.readFileSync(scriptPath, "utf8")
        .replace(/var SERVER_PORT = \d+;/, `var SERVER_PORT = ${Number(serverPort)};`)
        .replace(/var REPLY_PORT = \d+;/, `var REPLY_PORT = ${replyPort};`);
    const context = vm.createContext({ host, loadAPI() {}, println: console.error, Math, JSON });
    vm.runInContext(source, context, { filename: scriptPath });
    context.init();
    setTimeout(() => { notifications.push("stub: timed out"); finish(1); }, 60000);
});
