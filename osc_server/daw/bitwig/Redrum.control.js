// redrum-kit for Bitwig Studio: a controller script (Settings > Controllers > Add > redrum-kit > Redrum).
// Sends the redrum-kit server (`redrum serve`, OSC on 127.0.0.1:9000) the files named in the
// script's panel (Studio I/O panel > Redrum), waits for the reply and inserts the result into the
// first empty clip-launcher slot of the selected track (Transcribe: a MIDI clip of the target's hits).
// Bitwig controller scripts cannot read an audio clip's file path, so the files are typed or pasted
// into the "Source file" and "Target file" fields (drag from the browser into a text field works).

loadAPI(17);

host.setShouldFailOnDeprecatedUse(true);
host.defineController("redrum-kit", "Redrum", "0.1", "6c0c2f5e-4a9b-4f5e-9a55-7a2f1d0e9b31", "redrum-kit");

var SERVER_HOST = "127.0.0.1";
var SERVER_PORT = 9000;
var REPLY_PORT = 9001;         // Bitwig listens here; the script registers it with /redrum/reply_port
var SLOTS = 16;

var connection = null;
var pending = {};              // request id -> what to do with the result
var nextId = 1;
var sourceSetting, targetSetting, stepsSetting, thresholdSetting, statusSetting;
var cursorTrack, slotBank, transport;

function init() {
    var osc = host.getOscModule();
    var space = osc.createAddressSpace();
    space.registerMethod("/redrum/reply", "*", "redrum-kit replies", function (source, message) {
        onReply(message.getString(0), message.getString(1), message.getString(2));
    });
    space.registerMethod("/redrum/progress", "*", "redrum-kit progress", function (source, message) {
        setStatus("working... " + Math.round(100 * message.getFloat(1)) + "%");
    });
    space.setShouldLogMessages(false);
    osc.createUdpServer(REPLY_PORT, space);
    connection = osc.connectToUdpServer(SERVER_HOST, SERVER_PORT, space);

    var doc = host.getDocumentState();
    sourceSetting = doc.getStringSetting("Source file", "Redrum", 1024, "");
    targetSetting = doc.getStringSetting("Target file", "Redrum", 1024, "");
    stepsSetting = doc.getNumberSetting("Interpolation steps", "Redrum", 2, 64, 1, "steps", 8);
    thresholdSetting = doc.getNumberSetting("Layer threshold", "Redrum", 0, 0.5, 0.01, "", 0.04);
    statusSetting = doc.getStringSetting("Status", "Redrum", 256, "");
    doc.getSignalSetting("Redrum", "Redrum", "Source's sounds on the target's rhythm").addSignalObserver(transform);
    doc.getSignalSetting("Layer", "Redrum", "Layer the target oneshot").addSignalObserver(layer);
    doc.getSignalSetting("Interpolate", "Redrum", "Source rhythm to target rhythm").addSignalObserver(interpolate);
    doc.getSignalSetting("Transcribe", "Redrum", "Target's drums as MIDI at the project's tempo").addSignalObserver(transcribe);
    transport = host.createTransport();
    transport.tempo().value().markInterested();

    cursorTrack = host.createCursorTrack("redrum-cursor", "Redrum", 0, SLOTS, true);
    slotBank = cursorTrack.clipLauncherSlotBank();
    for (var i = 0; i < SLOTS; i++) {
        slotBank.getItemAt(i).hasContent().markInterested();
    }
    send("/redrum/reply_port", [REPLY_PORT], function () { setStatus("connected to redrum-kit"); });
}

function exit() {
}

function setStatus(text) {
    statusSetting.set(text);
    host.showPopupNotification("Redrum: " + text);
}

function send(address, args, onResult) {
    var id = "bitwig-" + (nextId++);
    pending[id] = onResult;
    connection.sendMessage.apply(connection, [address, id].concat(args));
}

function onReply(id, status, body) {
    var onResult = pending[id];
    if (onResult === undefined) {
        return;
    }
    delete pending[id];
    if (status !== "ok") {
        setStatus("error: " + body);
        return;
    }
    onResult(JSON.parse(body));
}

function needFile(setting, what) {
    var path = setting.get();
    if (!path) {
        setStatus("type the " + what + " file's path into the Redrum panel first");
        return null;
    }
    return path;
}

function insert(paths) {
    var free = [];
    for (var i = 0; i < SLOTS; i++) {
        if (!slotBank.getItemAt(i).hasContent().get()) {
            free.push(i);
        }
    }
    if (free.length < paths.length) {
        setStatus("not enough empty clip slots on the selected track; results are in " + paths[0]);
        return;
    }
    for (var k = 0; k < paths.length; k++) {
        slotBank.getItemAt(free[k]).replaceInsertionPoint().insertFile(paths[k]);
    }
    setStatus("inserted " + paths.length + " file" + (paths.length > 1 ? "s" : ""));
}

function transform() {
    var source = needFile(sourceSetting, "source"), target = needFile(targetSetting, "target");
    if (source && target) {
        setStatus("redrumming...");
        send("/redrum/transform", [source, target], function (r) {
            insert([r.path]);
            sayGuessed(r, "the source");
        });
    }
}

function sayGuessed(r, whose) {     // drums `whose` sounds play none of: made up by the model
    if (r.guessed && r.guessed.length) {
        setStatus(whose + " plays no " + r.guessed.join(" or ") + ": those hits are the model's guess");
    }
}

function layer() {
    var target = needFile(targetSetting, "target");
    if (target) {
        setStatus("layering...");
        send("/redrum/layer", [target, thresholdSetting.getRaw()], function (r) { insert([r.path]); });
    }
}

function interpolate() {
    var source = needFile(sourceSetting, "source"), target = needFile(targetSetting, "target");
    if (source && target) {
        setStatus("interpolating...");
        send("/redrum/interpolate", [source, target, Math.round(stepsSetting.getRaw())],
             function (r) { insert(r.paths); sayGuessed(r, "the source"); });
    }
}

function transcribe() {
    var target = needFile(targetSetting, "target");
    if (target) {
        setStatus("transcribing...");
        // written at the project's tempo, so that Bitwig, which places a MIDI file's notes by beats, keeps their times
        send("/redrum/transcribe", [target, "", transport.tempo().value().getRaw()],
             function (r) { insert([r.path]); });
    }
}
