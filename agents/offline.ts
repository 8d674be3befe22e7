// Every agent's offline answers, registered with the offline provider. A process that runs agents, or a tool
// that answers as the offline stand-in would, imports this once.
import "./ideator/offline.js";
import "./critic/offline.js";
import "./coder/offline.js";
import "./coder/offlineScaffold.js";
import "./writer/offline.js";
import "./reviewer/offline.js";
import "./areaChair/offline.js";
import "./figureCritic/offline.js";
