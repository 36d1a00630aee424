// The side panel of each step kind (SPEC §2.2), and the flow settings of the trigger
// box. Every panel is `({step, onChange, context}) => …` (see builder-design.md).
import "./panels.css";
import Email from "./email.jsx";
import Exit from "./exit.jsx";
import Field from "./field.jsx";
import If from "./if.jsx";
import Split from "./split.jsx";
import StartFlow from "./start_flow.jsx";
import Subscribe from "./subscribe.jsx";
import Tag from "./tag.jsx";
import Track from "./track.jsx";
import Trigger from "./trigger.jsx";
import Wait from "./wait.jsx";
import WaitFor from "./wait_for.jsx";
import Webhook from "./webhook.jsx";

export const panels = {
  email: Email,
  webhook: Webhook,
  tag: Tag,
  field: Field,
  subscribe: Subscribe,
  unsubscribe: Subscribe,
  wait: Wait,
  wait_for: WaitFor,
  if: If,
  split: Split,
  start_flow: StartFlow,
  track: Track,
  exit: Exit,
  trigger: Trigger,
};

export default panels;
