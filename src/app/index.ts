// The browser app (docs/APP.md): the site for a folder of .onnx experts, written or served.
export { planSite, writeSite, readSiteFile, planBytes, type SitePlan, type SiteFile } from './site-plan.js';
export { serveSite, sitePath, contentType, SECURITY_HEADERS, type ServeOptions, type RunningServer } from './server.js';
export { scanExperts, readExpert, parsePreprocessing, manifestOf, type Manifest, type ManifestExpert, type ExpertSource, type Preprocessing } from './experts.js';
export { readOnnxHeader, type OnnxHeader } from './onnx-metadata.js';
